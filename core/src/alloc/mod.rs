//! The segment/page allocator.
#[cfg(feature = "alloc")]
pub mod arena;
pub mod heap;
