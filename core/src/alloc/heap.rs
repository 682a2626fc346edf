//! Per-thread / per-CPU heaps (placeholder until the allocator core lands).
/// A heap.
pub struct Heap {}
