//! Locks that are safe against interrupt handlers: `spin::Mutex` with interrupts masked.
//!
//! A CPU that takes a lock and is then interrupted by a handler that wants the same lock would
//! spin forever on itself. [`IrqMutex::lock`] masks interrupts first and unmasks them (if they
//! were on) only after the lock is released, so that cannot happen.
use core::ops::{Deref, DerefMut};

use crate::cpu::IrqGuard;

/// A spin lock held with interrupts masked.
pub struct IrqMutex<T> {
    inner: spin::Mutex<T>,
}

/// Access to the value; interrupts stay masked until it is dropped.
pub struct IrqMutexGuard<'a, T> {
    // Field order matters: the lock is released before interrupts are unmasked.
    guard: spin::MutexGuard<'a, T>,
    _irq: IrqGuard,
}

impl<T> IrqMutex<T> {
    /// A new unlocked mutex.
    pub const fn new(value: T) -> Self {
        IrqMutex {
            inner: spin::Mutex::new(value),
        }
    }

    /// Masks interrupts, then spins until the lock is free.
    pub fn lock(&self) -> IrqMutexGuard<'_, T> {
        let irq = IrqGuard::new();
        IrqMutexGuard {
            guard: self.inner.lock(),
            _irq: irq,
        }
    }

    /// Takes the lock if it is free right now.
    pub fn try_lock(&self) -> Option<IrqMutexGuard<'_, T>> {
        let irq = IrqGuard::new();
        self.inner
            .try_lock()
            .map(|guard| IrqMutexGuard { guard, _irq: irq })
    }
}

impl<T> Deref for IrqMutexGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.guard
    }
}

impl<T> DerefMut for IrqMutexGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.guard
    }
}
