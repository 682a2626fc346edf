//! What tests read of a VM's register stack.
use kiln::vm::Vm;

/// Length of `vm`'s register stack (a binary search over `Vm::slot`).
pub fn stack_len(vm: &Vm<'_>) -> usize {
    let (mut lo, mut hi) = (0usize, 1usize << 40);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if vm.slot(mid).is_some() {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    lo
}
