#!/usr/bin/env bash
# Cargo runner for the thumbv7em test images: boots IMAGE under qemu-system-arm -M mps2-an386
# (Cortex-M4) and passes only if the image exits through semihosting with status 0 *and* printed
# its success line on the UART. A hang (timeout), a fault or any other status is a failure.
# KILN_QEMU_TIMEOUT overrides the 60 s limit.
set -u
image="$1"
name="$(basename "$image")"
cmd=(qemu-system-arm -M mps2-an386 -cpu cortex-m4 -display none -monitor none -serial stdio
     -semihosting-config enable=on,target=native -kernel "$image")
echo "+ timeout ${KILN_QEMU_TIMEOUT:-60} ${cmd[*]}" >&2
start=$(date +%s.%N)
out="$(mktemp)"
timeout "${KILN_QEMU_TIMEOUT:-60}" "${cmd[@]}" </dev/null | tee "$out"
status=${PIPESTATUS[0]}
took=$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f s", e - s }')
passed=0
grep -q '^\[kiln-mcu\] PASSED' "$out" && passed=1
rm -f "$out"
if [ "$status" = 0 ] && [ "$passed" = 1 ]; then
  echo "qemu mps2-an386 ${name%%-*}: PASS ($took)"; exit 0
fi
case "$status" in
  124) echo "qemu mps2-an386 ${name%%-*}: FAIL (timeout)" ;;
  *) echo "qemu mps2-an386 ${name%%-*}: FAIL (exit status $status, success line $passed, $took)" ;;
esac
exit 1
