//! Building a trace: record it, compile it, install it and link the exits that wait for it,
//! with the `--trace-jit` lines that say what it covers (calls followed or stopped at, side
//! traces linked).
use super::*;

impl Jit<'_> {
    /// Record, compile and install; the trace's index on success.
    /// `home`: for a side trace, the start of the loop trace whose exit it continues (see
    /// [`Installed::runs_to`]); `inherited`: for a side trace, what that exit knows of the
    /// slots.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn build(
        &mut self,
        start: usize,
        func: usize,
        side: bool,
        sibling: bool,
        home: Option<usize>,
        inherited: Option<&[(u32, Known)]>,
        regs: &[Value],
    ) -> Result<(usize, CallLog), Abort> {
        let (rec, calls) = {
            let traces = &self.traces;
            let installed = &self.installed;
            let links =
                |p: usize| matches!(traces.state(loop_id(func, p)), TraceState::Compiled { .. });
            let passes = |p: usize| match (home, traces.state(loop_id(func, p))) {
                (Some(home), TraceState::Compiled { trace }) => {
                    installed.get(trace).is_some_and(|t| t.runs_to(home))
                }
                _ => false,
            };
            let from = Start {
                func,
                pc: start,
                side,
                links: &links,
                passes: &passes,
                bufs: &self.views,
                host: Some(&self.host_ctx),
            };
            record_with_calls(self.prog, from, regs)?
        };
        let index = self.installed.len();
        let tag = u16::try_from(index)
            .ok()
            .filter(|_| index < MAX_TAG)
            .ok_or(Abort::NoExecMemory)?;
        // The optimiser emits at most three snapshots per recorded guard: one for the
        // pre-roll, one for the body, or instead of that two guards hoisted before the loop
        // (a bounds check on a strided counter: `opt::bounds`); checked below. Guards inside a
        // followed call share one recorded snapshot, so count guards, not snapshots.
        let guards = rec.insts.iter().filter(|i| i.op.is_guard()).count();
        let table: Box<[u64]> = vec![0u64; 3 * guards.max(rec.snaps.len()) + 1].into_boxed_slice();
        let exit_links = ExitLinks {
            tag,
            table: table.as_ptr() as u64,
        };
        // Snapshot entries of registers dead at their exit's pc are dropped (see `jit::live`).
        let live = self.prog.funcs.get(func).map(Liveness::of);
        let is_live = |pc: u32, slot: u32| live.as_ref().is_none_or(|l| l.is_live(pc, slot));
        // The trace installed where this one ends: its exits there may enter it with its
        // values in its registers.
        let nregs = self.prog.funcs.get(func).map_or(0, |f| f.nregs as u32);
        let ends_in = match rec.insts.last() {
            Some(i) if i.op == crate::jit::ir::Op::Exit => rec.snaps.get(i.snap as usize),
            _ => None,
        }
        .map(|s| s.pc as usize)
        .filter(|&end| end != start)
        .and_then(|end| match self.traces.state(loop_id(func, end)) {
            TraceState::Compiled { trace } => self.installed.get(trace),
            _ => None,
        })
        .filter(|t| t.func == func && !t.sibling && t.code.min_slots() <= nregs)
        .and_then(|t| {
            let base = t.code.entry().as_ptr() as u64;
            t.compiled.reg_entry_at(base, t.start as u32)
        });
        let from = TraceStart {
            pc: start as u32,
            inherited,
            ends_in: ends_in.as_ref(),
        };
        let compiled = compile_entered::<Native>(&rec, &VM_LAYOUT, &exit_links, &is_live, from)?;
        let code = InstalledTrace::install(self.mem, &compiled.code, compiled.min_slots())?;
        if compiled.alloc.spill_slots > self.max_spills {
            self.max_spills = compiled.alloc.spill_slots;
            self.frame = ExitFrame::new(self.max_spills);
        }
        let call_stop = match compiled.trace.insts.last() {
            Some(i) if i.op == crate::jit::ir::Op::Exit => compiled
                .trace
                .snaps
                .get(i.snap as usize)
                .filter(|s| self.is_call(func, s.pc as usize))
                .map(|_| i.snap),
            _ => None,
        };
        self.installed.push(Installed {
            compiled,
            code,
            func,
            start,
            sibling,
            links: table,
            payoff: Payoff::default(),
            call_stop,
        });
        if let Some(f) = self.frames.get_mut(func) {
            *f = (*f).max(calls.frames);
        }
        self.link(index);
        Ok((index, calls))
    }

    /// `[JIT]` lines for the calls trace `pc` met: followed, or where it exits instead.
    pub(super) fn say_calls(&mut self, pc: usize, calls: &CallLog) {
        let prog = self.prog;
        let name = |f: usize| prog.funcs.get(f).map_or("?", |f| prog.func_name(f));
        for n in &calls.notes {
            match n.stop {
                None => {
                    self.stats.inlined_calls += 1;
                    self.say(format_args!(
                        "[JIT] Trace at PC {pc} inlines {} (call at PC {} of {}, depth {})",
                        name(n.callee),
                        n.pc,
                        name(n.caller),
                        n.depth
                    ));
                }
                Some(why) => {
                    self.stats.call_exits += 1;
                    self.say(format_args!(
                        "[JIT] Trace at PC {pc} exits at the call of {} at PC {}: {}",
                        name(n.callee),
                        n.pc,
                        why.message()
                    ));
                }
            }
        }
    }

    /// The `[JIT]` line of a trace that ends with an exit (a link, a call or a return the
    /// interpreter makes): where, and whether a trace runs there natively.
    pub(super) fn say_end(&mut self, pc: usize, n: usize) {
        let t = &self.installed[n].compiled.trace;
        let end = match t.insts.last() {
            Some(i) if i.op == crate::jit::ir::Op::Exit => t.snaps.get(i.snap as usize),
            _ => None,
        };
        let Some(end) = end.map(|s| s.pc as usize) else {
            return;
        };
        let func = self.installed[n].func;
        let how = match self.traces.state(loop_id(func, end)) {
            _ if self.installed[n].call_stop.is_some() => {
                "a call stop (the VM makes the call there, native code goes on after it)"
            }
            TraceState::Compiled { .. } if end != pc => "links to the trace there",
            _ => "exits to the interpreter there",
        };
        self.say(format_args!(
            "[JIT] Trace at PC {pc} ends at PC {end}: {how}"
        ));
    }

    /// Links the exits of every trace of the new trace's function that resume at its start
    /// to it, and its own exits to the traces installed where they resume. Never an exit to
    /// the start of the trace that takes it: the interpreter must make progress there. A
    /// sibling (see [`sibling_id`]) gets only the exits of its trace that resume at their
    /// common start. An exit jumps to the target's fast entry when what it knows of the
    /// slots gives the target's entry requirements, else to its checked entry.
    fn link(&mut self, new: usize) {
        let func = self.installed[new].func;
        let nregs = self.prog.funcs.get(func).map_or(0, |f| f.nregs as u32);
        let fits = |t: &Installed| t.code.min_slots() <= nregs;
        let entry_of = |t: &Installed| Entry {
            start: t.start,
            checked: t.entry_addr(),
            fast: t.fast_entry_addr(),
            requires: t.compiled.requires.clone(),
        };
        let entries: Vec<Entry> = self
            .installed
            .iter()
            .filter(|t| t.func == func && fits(t) && !t.sibling)
            .map(entry_of)
            .collect();
        let new_start = self.installed[new].start;
        let new_sibling = self.installed[new].sibling;
        let new_entry = fits(&self.installed[new]).then(|| entry_of(&self.installed[new]));
        for (i, t) in self.installed.iter_mut().enumerate() {
            if t.func != func {
                continue;
            }
            for (n, snap) in t.compiled.trace.snaps.iter().enumerate() {
                let pc = snap.pc as usize;
                // An exit to the trace's own start: only to the sibling made for it.
                let to_sibling = new_sibling && i != new && !t.sibling && t.start == new_start;
                if pc == t.start && !to_sibling {
                    continue;
                }
                let target = if i == new {
                    entries.iter().find(|e| e.start == pc)
                } else if pc == new_start && (!new_sibling || to_sibling) {
                    new_entry.as_ref()
                } else {
                    None
                };
                let addr = target.map(|e| match t.compiled.exit_gives(n, &e.requires) {
                    true => e.fast,
                    false => e.checked,
                });
                if let (Some(addr), Some(slot)) = (addr, t.links.get_mut(n)) {
                    *slot = addr;
                }
            }
        }
    }
}

/// A trace's two ways in, as [`Jit::link`] chooses between them.
struct Entry {
    start: usize,
    checked: u64,
    fast: u64,
    requires: Vec<(u32, Known)>,
}
