//! The opcodes RFC 6455 defines (§5.2), and which of them are control frames.
//!
//! A header keeps its opcode as the raw four bits it arrived with (so a test
//! can send opcode 3 on purpose); [`Opcode`] is what a checked header yields.

/// A frame opcode RFC 6455 defines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Opcode {
    /// The next fragment of a message started by a text or binary frame.
    Continuation = 0x0,
    /// A text message (UTF-8).
    Text = 0x1,
    /// A binary message: every tick and reply tickcast sends.
    Binary = 0x2,
    /// Close, with an optional code and reason.
    Close = 0x8,
    /// Ping, to be answered by a pong with the same payload.
    Ping = 0x9,
    /// Pong, the answer to a ping.
    Pong = 0xA,
}

impl Opcode {
    /// The opcode for the low four bits of a frame's first byte, or `None`
    /// for the ten values RFC 6455 reserves.
    #[inline]
    pub const fn from_bits(bits: u8) -> Option<Opcode> {
        match bits {
            0x0 => Some(Opcode::Continuation),
            0x1 => Some(Opcode::Text),
            0x2 => Some(Opcode::Binary),
            0x8 => Some(Opcode::Close),
            0x9 => Some(Opcode::Ping),
            0xA => Some(Opcode::Pong),
            _ => None,
        }
    }

    /// Whether this is a control frame (close, ping, pong): at most 125
    /// bytes, never fragmented, allowed between the fragments of a message.
    #[inline]
    pub const fn is_control(self) -> bool {
        self as u8 & 0x8 != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn six_of_sixteen_values_are_opcodes_and_the_high_half_is_control() {
        let defined: Vec<Opcode> = (0..16).filter_map(Opcode::from_bits).collect();
        assert_eq!(defined.len(), 6);
        for op in defined {
            assert_eq!(Opcode::from_bits(op as u8), Some(op));
            assert_eq!(
                op.is_control(),
                matches!(op, Opcode::Close | Opcode::Ping | Opcode::Pong)
            );
        }
    }
}
