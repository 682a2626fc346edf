//! The segment/page allocator.
pub mod heap;
