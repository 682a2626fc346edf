//! The bytecode VM: opcode table, verifier, interpreter, the .kl language.
