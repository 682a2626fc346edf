//! The one place the lexer and parser get their memory from.
//!
//! Tokens and AST nodes live in [`AVec`]s parameterised by an `allocator_api2` allocator, so the
//! front end works unchanged with any allocator. [`crate::vm::lang::compile`] hands it a
//! `&`[`Arena`](crate::allocator::arena::Arena) (bump allocation, freed all at once when the
//! compilation ends); this module names the types.
pub(crate) use allocator_api2::alloc::Allocator;

/// A vector in the front end's allocator.
pub type AVec<T, A> = allocator_api2::vec::Vec<T, A>;

/// An empty vector in `alloc`.
pub fn new_vec<T, A: Allocator>(alloc: A) -> AVec<T, A> {
    AVec::new_in(alloc)
}
