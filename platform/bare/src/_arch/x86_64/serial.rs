//! 16550 UART on COM1 (I/O port 0x3F8), 115200 8N1, polled.
use crate::port::{inb, outb};

const COM1: u16 = 0x3F8;
const DATA: u16 = COM1;
const INT_ENABLE: u16 = COM1 + 1;
const FIFO_CTRL: u16 = COM1 + 2;
const LINE_CTRL: u16 = COM1 + 3;
const MODEM_CTRL: u16 = COM1 + 4;
const LINE_STATUS: u16 = COM1 + 5;
const LSR_THR_EMPTY: u8 = 1 << 5;

/// Programs the UART: no interrupts, divisor 1 (115200 baud), 8N1, FIFOs on.
pub(crate) fn init() {
    outb(INT_ENABLE, 0x00);
    outb(LINE_CTRL, 0x80); // DLAB: the next two writes set the divisor
    outb(DATA, 0x01);
    outb(INT_ENABLE, 0x00);
    outb(LINE_CTRL, 0x03); // 8 bits, no parity, one stop bit
    outb(FIFO_CTRL, 0xC7);
    outb(MODEM_CTRL, 0x03);
}

/// Sends one byte once the transmit holding register is empty.
pub(crate) fn write_byte(byte: u8) {
    while inb(LINE_STATUS) & LSR_THR_EMPTY == 0 {
        core::hint::spin_loop();
    }
    outb(DATA, byte);
}
