//! Page queues: doubly linked lists of pages through `next`/`prev`, one per class (and one
//! of full pages per class) in each heap.
use core::ptr;

use crate::allocator::page::{Page, KEPT};

/// A doubly linked list of pages through `next`/`prev`.
#[derive(Clone, Copy)]
pub(crate) struct PageQueue {
    pub(crate) head: *mut Page,
    pub(crate) tail: *mut Page,
}

impl PageQueue {
    pub(super) const EMPTY: PageQueue = PageQueue {
        head: ptr::null_mut(),
        tail: ptr::null_mut(),
    };

    /// A page joins: a page kept as the only one of the queue is no longer alone.
    ///
    /// # Safety
    /// The queue's pages are valid.
    pub(super) unsafe fn unkeep_head(&mut self) {
        if !self.head.is_null() {
            // SAFETY: queue pages are valid (caller).
            unsafe { (*self.head).flags &= !KEPT };
        }
    }

    /// # Safety
    /// `page` is valid and on no queue.
    pub(super) unsafe fn push_front(&mut self, page: *mut Page) {
        // SAFETY: valid pages (caller, queue invariant).
        unsafe {
            self.unkeep_head();
            (*page).prev = ptr::null_mut();
            (*page).next = self.head;
            if self.head.is_null() {
                self.tail = page;
            } else {
                (*self.head).prev = page;
            }
        }
        self.head = page;
    }

    /// # Safety
    /// `page` is valid and on no queue.
    pub(super) unsafe fn push_back(&mut self, page: *mut Page) {
        // SAFETY: valid pages (caller, queue invariant).
        unsafe {
            self.unkeep_head();
            (*page).next = ptr::null_mut();
            (*page).prev = self.tail;
            if self.tail.is_null() {
                self.head = page;
            } else {
                (*self.tail).next = page;
            }
        }
        self.tail = page;
    }

    /// # Safety
    /// `page` is on this queue.
    pub(super) unsafe fn remove(&mut self, page: *mut Page) {
        // SAFETY: `page` and its neighbours are on this queue.
        unsafe {
            let (prev, next) = ((*page).prev, (*page).next);
            if prev.is_null() {
                self.head = next;
            } else {
                (*prev).next = next;
            }
            if next.is_null() {
                self.tail = prev;
            } else {
                (*next).prev = prev;
            }
            (*page).next = ptr::null_mut();
            (*page).prev = ptr::null_mut();
        }
    }

    pub(crate) fn is_single(&self) -> bool {
        !self.head.is_null() && self.head == self.tail
    }
}
