//! `metric_histograms` rows folded into the same windows as the samples of their series: each
//! row's sketch merges into its window's sketch, so rollups, percentiles and detection cover
//! both alike.

use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::datatypes::TimestampMillisecondType;
use datafusion::arrow::error::ArrowError;

use super::{sketch_from, window_of, MetricFold};
use crate::columns::{column, dictionary, timestamps};

impl MetricFold {
    /// Folds rows of the `metric_histograms` table (`timestamp`, `series` as a dictionary,
    /// `sketch`).
    ///
    /// # Errors
    /// When a column is missing or a sketch does not decode.
    pub fn add_histograms(
        &mut self,
        batch: &RecordBatch,
        window_ms: i64,
    ) -> Result<(), ArrowError> {
        let ts = timestamps(batch, "timestamp")?;
        let ts = ts.as_primitive::<TimestampMillisecondType>();
        let sketches = column(batch, "sketch")?;
        let series = dictionary(&column(batch, "series")?)?;
        let distinct = series.values().as_string::<i32>();
        let mut ids = Vec::with_capacity(distinct.len());
        for key in distinct.iter() {
            ids.push(self.series_id(key.unwrap_or_default())?);
        }
        for row in 0..batch.num_rows() {
            if series.is_null(row) {
                continue;
            }
            let Some(sketch) = sketch_from(&sketches, row)? else {
                continue;
            };
            let id = ids[series.keys().value(row) as usize];
            let slot = self.slot(window_of(ts.value(row), window_ms), id);
            self.sketches[slot].merge(&sketch);
        }
        Ok(())
    }
}
