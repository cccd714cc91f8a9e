//! The grouped form of the sketch aggregates: one sketch per group, each stored sketch merged
//! into its group's straight from its bytes. DataFusion calls this for `GROUP BY` queries
//! instead of one row-wise accumulator per group (which it would feed group by group, after
//! sorting each batch's rows by group).

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayBuilder, ArrayRef, BinaryArray, BinaryBuilder, BooleanArray, Float64Array,
};
use datafusion::common::Result;
use datafusion::logical_expr::{EmitTo, GroupsAccumulator};

use super::{for_each_sketch, merge_into, Finish};
use crate::DDSketch;

/// The merged sketch of every group so far.
pub(crate) struct SketchGroups {
    sketches: Vec<DDSketch>,
    /// Heap bytes of the sketches' buckets, kept up to date as they grow.
    heap_bytes: usize,
    fname: &'static str,
    finish: Finish,
}

impl SketchGroups {
    pub(crate) fn boxed(fname: &'static str, finish: Finish) -> Box<dyn GroupsAccumulator> {
        Box::new(Self {
            sketches: Vec::new(),
            heap_bytes: 0,
            fname,
            finish,
        })
    }

    /// Merges row `i`'s sketch of `values` into group `groups[i]`, for rows `filter` keeps.
    fn merge(
        &mut self,
        values: &ArrayRef,
        groups: &[usize],
        filter: Option<&BooleanArray>,
        total_groups: usize,
    ) -> Result<()> {
        if self.sketches.len() < total_groups {
            self.sketches.resize_with(total_groups, DDSketch::default);
        }
        let (sketches, heap, fname) = (&mut self.sketches, &mut self.heap_bytes, self.fname);
        for_each_sketch(values, fname, |i, bytes| {
            if filter.is_some_and(|f| !f.is_valid(i) || !f.value(i)) {
                return Ok(());
            }
            let sketch = &mut sketches[groups[i]];
            let before = sketch.heap_bytes();
            merge_into(sketch, bytes, fname)?;
            *heap += sketch.heap_bytes() - before;
            Ok(())
        })
    }

    /// The sketches of the groups `emit_to` names, taken out.
    fn take(&mut self, emit_to: EmitTo) -> Vec<DDSketch> {
        let taken = emit_to.take_needed(&mut self.sketches);
        let bytes: usize = taken.iter().map(DDSketch::heap_bytes).sum();
        self.heap_bytes = self.heap_bytes.saturating_sub(bytes);
        taken
    }
}

impl GroupsAccumulator for SketchGroups {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        self.merge(&values[0], group_indices, opt_filter, total_num_groups)
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        let sketches = self.take(emit_to);
        Ok(match self.finish {
            Finish::Quantile(q) => Arc::new(
                sketches
                    .iter()
                    .map(|s| s.quantile(q))
                    .collect::<Float64Array>(),
            ),
            Finish::Rank(v) => Arc::new(
                sketches
                    .iter()
                    .map(|s| s.rank_fraction(v))
                    .collect::<Float64Array>(),
            ),
            Finish::Sketch => Arc::new(BinaryArray::from_iter_values(
                sketches.iter().map(DDSketch::to_bytes),
            )),
        })
    }

    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        let sketches = self.take(emit_to);
        Ok(vec![Arc::new(BinaryArray::from_iter_values(
            sketches.iter().map(DDSketch::to_bytes),
        ))])
    }

    fn merge_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        total_num_groups: usize,
    ) -> Result<()> {
        self.merge(&values[0], group_indices, None, total_num_groups)
    }

    /// Each row's state is its own sketch (null where `opt_filter` drops the row).
    fn convert_to_state(
        &self,
        values: &[ArrayRef],
        opt_filter: Option<&BooleanArray>,
    ) -> Result<Vec<ArrayRef>> {
        let mut rows = BinaryBuilder::new();
        for_each_sketch(&values[0], self.fname, |i, bytes| {
            // Rows before `i` are null.
            while rows.len() < i {
                rows.append_null();
            }
            if opt_filter.is_none_or(|f| f.is_valid(i) && f.value(i)) {
                rows.append_value(bytes);
            } else {
                rows.append_null();
            }
            Ok(())
        })?;
        while rows.len() < values[0].len() {
            rows.append_null();
        }
        Ok(vec![Arc::new(rows.finish())])
    }

    fn size(&self) -> usize {
        self.sketches.capacity() * std::mem::size_of::<DDSketch>() + self.heap_bytes
    }
}
