#!/usr/bin/env bash
# Cargo runner for aarch64-unknown-none test kernels: boots KERNEL under qemu-system-aarch64
# -M virt and passes only if the kernel exits through semihosting with the success code (33).
# A hang (timeout) or any other code is a failure. Kernels whose name starts with `smp` get two
# CPUs. KILN_QEMU_CPU picks the CPU model (default cortex-a72), KILN_QEMU_MACHINE the machine
# (default virt; `virt,virtualization=on` enters at EL2 with PSCI over smc), KILN_QEMU_TIMEOUT
# the limit (60 s).
set -u
kernel="$1"
name="$(basename "$kernel")"
cpus=1
case "$name" in smp*) cpus=2 ;; esac
cmd=(qemu-system-aarch64 -M "${KILN_QEMU_MACHINE:-virt}" -cpu "${KILN_QEMU_CPU:-cortex-a72}" -m 256M -smp "$cpus"
     -display none -monitor none -serial stdio -semihosting-config enable=on,target=native
     -kernel "$kernel")
echo "+ timeout ${KILN_QEMU_TIMEOUT:-60} ${cmd[*]}" >&2
start=$(date +%s.%N)
timeout "${KILN_QEMU_TIMEOUT:-60}" "${cmd[@]}" </dev/null
status=$?
took=$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f s", e - s }')
case "$status" in
  33) echo "qemu aarch64 ${name%%-*}: PASS ($took)"; exit 0 ;;
  124) echo "qemu aarch64 ${name%%-*}: FAIL (timeout)" ;;
  *) echo "qemu aarch64 ${name%%-*}: FAIL (exit status $status, $took)" ;;
esac
exit 1
