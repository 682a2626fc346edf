//! Payoff: whether entering a loop trace from the interpreter pays. Entering and leaving native
//! code costs about as much as interpreting [`ENTRY_MIN_WORDS`] code words, so the driver counts
//! the words each entry runs natively (the fuel it charges) and pauses a trace whose entries
//! average fewer. An entry that ends at a call stop ([`Reply::Call`]) is judged after the call,
//! per stop-to-stop cycle.
//!
//! ```text
//!   enter_loop --run_chain--> Native/Wait: judge(words)        every PAYOFF_SAMPLE entries:
//!                             Call: StoppedEntry pushed         words < PAYOFF_SAMPLE x 32?
//!   after_call --run_chain--> judge_cycle(stopped + words)       pause PAUSE_MIN << misses
//! ```
use super::{Jit, Reply};

/// An entry from the interpreter whose chain stopped at a call: judged by [`Payoff`] once native
/// code after the call (and after any further call stops) gives control back.
#[derive(Clone, Copy, Debug)]
pub(super) struct StoppedEntry {
    pub(super) trace: usize,
    words: u64,
    room: usize,
}

/// Entries from the interpreter to one trace, and the code words they ran natively (the fuel
/// they charged). Entering and leaving costs about as much as interpreting [`ENTRY_MIN_WORDS`]
/// words, so a trace whose entries average fewer (a loop compiled on a path that became rare,
/// whose other path cannot be compiled: every entry leaves at the first guard) is not entered
/// for a while: [`PAUSE_MIN`] arrivals, doubling while it keeps not paying.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Payoff {
    pub(super) entries: u32,
    pub(super) words: u64,
    /// Consecutive samples that did not pay.
    pub(super) misses: u8,
    /// The next arrival replies with a pause instead of entering.
    pub(super) pause: bool,
    /// The first pause was logged.
    pub(super) logged: bool,
}

/// Entries per payoff sample.
pub const PAYOFF_SAMPLE: u32 = 64;
/// Average code words per entry below which entering a loop trace does not pay.
pub use crate::jit::trace::ENTRY_MIN_WORDS;
/// Arrivals a trace that did not pay is left alone (doubled per consecutive miss, up to
/// `PAUSE_MIN << 12`).
pub const PAUSE_MIN: u32 = 256;

impl Payoff {
    /// Counts an entry that ran `words` natively; true when a sample just ended without
    /// paying.
    pub(super) fn entered(&mut self, words: u64) -> bool {
        self.entries += 1;
        self.words = self.words.saturating_add(words);
        if self.entries < PAYOFF_SAMPLE {
            return false;
        }
        let pays = self.words >= u64::from(PAYOFF_SAMPLE) * ENTRY_MIN_WORDS;
        self.entries = 0;
        self.words = 0;
        if pays {
            self.misses = 0;
        } else {
            self.misses = self.misses.saturating_add(1);
            self.pause = true;
        }
        !pays
    }

    /// The pause after the last miss.
    pub(super) fn pause_len(&self) -> u32 {
        PAUSE_MIN << u32::from(self.misses.clamp(1, 13) - 1)
    }
}

impl Jit<'_> {
    /// Counts an entry of `trace` that ran `words` natively and ended with `reply`. An entry
    /// that stopped at a call is judged when native code after the call gives control back
    /// or stops at the next call, with the words run there added; each further call stop
    /// counts as one more entry of the same trace. So a loop whose iterations do little
    /// natively around a call it cannot make (less than a call stop costs) is paused like any
    /// other trace that does not pay.
    #[inline]
    pub(super) fn judge(&mut self, trace: usize, words: u64, reply: &Reply<usize>) {
        if matches!(reply, Reply::Call(_)) {
            self.judge_later(trace, words);
        } else if let Some(t) = self.installed.get_mut(trace) {
            if t.payoff.entered(words) {
                self.paused(trace);
            }
        }
    }

    /// An entry of `trace` stopped at a call after `words`: judged after the call.
    #[cold]
    #[inline(never)]
    fn judge_later(&mut self, trace: usize, words: u64) {
        // Entries at this depth or deeper whose calls never came back (a trap, or a hook in
        // between that does not pass `after_call` on) are over.
        let room = self.room;
        self.stopped.retain(|e| e.room > room);
        self.stopped.push(StoppedEntry { trace, words, room });
    }

    /// A payoff sample of `trace` ended without paying: counted, and logged the first time.
    #[cold]
    #[inline(never)]
    fn paused(&mut self, trace: usize) {
        self.stats.paused += 1;
        let Some(t) = self.installed.get_mut(trace) else {
            return;
        };
        if !t.payoff.logged {
            t.payoff.logged = true;
            let (start, stops) = (t.start, t.call_stop.is_some());
            let why = if stops { ", call stops included" } else { "" };
            self.say(format_args!(
                "[JIT] Trace at PC {start} paused: its entries ran fewer than \
                 {ENTRY_MIN_WORDS} words natively on average{why} (entering costs more)"
            ));
        }
    }

    /// Judges one call-stop cycle of the entry `e` (its words plus `words` run after the
    /// call); `reply` says whether another cycle follows.
    pub(super) fn judge_cycle(&mut self, e: StoppedEntry, words: u64, reply: &Reply<usize>) {
        self.judge(e.trace, e.words + words, &Reply::Wait(1));
        self.judge(e.trace, 0, reply);
    }

    /// The stopped entry whose call just returned (at the current call room), if any; those
    /// of nested runs that never came back (a trap ended them) are dropped.
    pub(super) fn take_stopped(&mut self) -> Option<StoppedEntry> {
        while let Some(e) = self.stopped.last().copied() {
            if e.room < self.room {
                self.stopped.pop();
                continue;
            }
            if e.room == self.room {
                self.stopped.pop();
                return Some(e);
            }
            return None;
        }
        None
    }
}
