//! Why a free was refused: shared by the free paths of page-backed and huge blocks.

use core::fmt;

/// Why a pointer could not be freed. Nothing was changed when one of these is returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FreeError {
    /// Not in memory kiln manages (another allocator's, a stack or static address, or a huge
    /// block that was already freed).
    Foreign,
    /// In kiln's memory but not the start of an allocated block (interior pointer, or a block
    /// whose page was already given back: a double free detected late).
    NotABlock,
    /// The block is already free.
    DoubleFree,
}

impl fmt::Display for FreeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FreeError::Foreign => "pointer was not allocated by kiln (or was already freed)",
            FreeError::NotABlock => "pointer is inside kiln's memory but not at an allocated block (interior pointer, or freed already)",
            FreeError::DoubleFree => "double free: block is already free",
        })
    }
}
