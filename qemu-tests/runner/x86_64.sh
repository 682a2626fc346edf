#!/usr/bin/env bash
# Cargo runner for x86_64-unknown-none test kernels: boots KERNEL under qemu-system-x86_64 and
# passes only if the kernel exits through isa-debug-exit with the success code (33).
# A triple fault (-no-reboot exits 0), a hang (timeout) or any other code is a failure.
# Kernels whose name starts with `smp` get two CPUs. KILN_QEMU_TIMEOUT overrides the 60 s limit.
set -u
kernel="$1"
name="$(basename "$kernel")"
cpus=1
case "$name" in smp*) cpus=2 ;; esac
cmd=(qemu-system-x86_64 -m 256M -smp "$cpus" -cpu max -display none -monitor none -serial stdio
     -no-reboot -device isa-debug-exit,iobase=0xf4,iosize=0x04 -kernel "$kernel")
echo "+ timeout ${KILN_QEMU_TIMEOUT:-60} ${cmd[*]}" >&2
start=$(date +%s.%N)
timeout "${KILN_QEMU_TIMEOUT:-60}" "${cmd[@]}" </dev/null
status=$?
took=$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f s", e - s }')
case "$status" in
  33) echo "qemu x86_64 ${name%%-*}: PASS ($took)"; exit 0 ;;
  124) echo "qemu x86_64 ${name%%-*}: FAIL (timeout)" ;;
  *) echo "qemu x86_64 ${name%%-*}: FAIL (exit status $status, $took)" ;;
esac
exit 1
