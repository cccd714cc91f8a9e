//! What the consume loop holds while it runs: its clients, and what it knows of each assigned
//! partition (where the lake ends, where reading is, the cumulative series).

use std::collections::HashMap;

use rdkafka::consumer::BaseConsumer;
use rdkafka::producer::BaseProducer;
use tokio::runtime::Handle;
use tokio_util::sync::CancellationToken;

use crate::cumulative::PartitionSeries;
use crate::membership::Ctx;
use crate::partition::PartitionState;
use opslake_lake::batch::TopicPartition;

/// The consumer loop's clients and what it knows of its partitions: what a commit needs.
pub(crate) struct Session<'a> {
    pub(crate) consumer: &'a BaseConsumer<Ctx>,
    pub(crate) producer: &'a BaseProducer,
    pub(crate) handle: &'a Handle,
    pub(crate) shutdown: &'a CancellationToken,
    pub(crate) parts: HashMap<TopicPartition, PartitionState>,
    /// The next offset of each partition as of this process's last commit.
    pub(crate) committed_ends: HashMap<TopicPartition, i64>,
    /// The cumulative histogram series of each assigned partition.
    pub(crate) cumulative: HashMap<TopicPartition, PartitionSeries>,
    /// The series of partitions revoked after their last commit here, with the offset they
    /// match: what a reassignment resumes with when the lake it read lags behind that commit.
    pub(crate) revoked_series: HashMap<TopicPartition, (i64, PartitionSeries)>,
}
