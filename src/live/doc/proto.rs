//! The y-protocols wire format, written from its description (lib0 encoding): the sync
//! messages (step 1, step 2, update), awareness, auth, and the extras `@hocuspocus/provider`
//! speaks. A pure codec with no document in it, so the decoder can be fuzzed on its own.
//!
//! Framing: on `/ws/doc/{post_id}` a frame is one message (y-websocket); on `/ws` every frame
//! starts with the document's name as a `varString` (the hocuspocus framing), so one socket
//! carries many documents.

/// Top-level message types (y-protocols, plus hocuspocus' numbers above 3).
pub const MSG_SYNC: u64 = 0;
pub const MSG_AWARENESS: u64 = 1;
pub const MSG_AUTH: u64 = 2;
pub const MSG_QUERY_AWARENESS: u64 = 3;
pub const MSG_STATELESS: u64 = 5;
pub const MSG_CLOSE: u64 = 7;
pub const MSG_SYNC_STATUS: u64 = 8;
/// Hocuspocus' keepalive, sent as a bare one-byte frame without a document name.
pub const MSG_PING: u8 = 9;
pub const MSG_PONG: u8 = 10;

pub const SYNC_STEP1: u64 = 0;
pub const SYNC_STEP2: u64 = 1;
pub const SYNC_UPDATE: u64 = 2;

/// Auth sub-messages: y-protocols has only `permission denied` (0); hocuspocus numbers
/// token 0, permission denied 1, authenticated 2 (its own family of the same type).
pub const YAUTH_PERMISSION_DENIED: u64 = 0;
pub const HAUTH_TOKEN: u64 = 0;
pub const HAUTH_PERMISSION_DENIED: u64 = 1;
pub const HAUTH_AUTHENTICATED: u64 = 2;

/// Longest document name accepted on `/ws`: names are `post/{id}`.
pub const MAX_NAME: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("message ends early")]
    Eof,
    #[error("number out of range")]
    Overflow,
    #[error("text is not UTF-8")]
    Utf8,
    #[error("unknown message type {0}")]
    Unknown(u64),
    #[error("bytes after the message")]
    Trailing,
}

/// A lib0 decoder over a byte slice.
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    pub fn rest(&self) -> &'a [u8] {
        &self.buf[self.pos..]
    }

    pub fn is_done(&self) -> bool {
        self.pos >= self.buf.len()
    }

    pub fn u8(&mut self) -> Result<u8, DecodeError> {
        let b = *self.buf.get(self.pos).ok_or(DecodeError::Eof)?;
        self.pos += 1;
        Ok(b)
    }

    /// lib0 `varUint`: 7 bits a byte, low first, high bit set on all but the last. Capped at
    /// 53 bits, as JavaScript numbers are.
    pub fn var_uint(&mut self) -> Result<u64, DecodeError> {
        let mut n: u64 = 0;
        let mut shift = 0u32;
        loop {
            let b = self.u8()?;
            n |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                break;
            }
            shift += 7;
            if shift > 49 {
                return Err(DecodeError::Overflow);
            }
        }
        if n > (1 << 53) - 1 {
            return Err(DecodeError::Overflow);
        }
        Ok(n)
    }

    /// lib0 `varUint8Array`: a length, then that many bytes.
    pub fn bytes(&mut self) -> Result<&'a [u8], DecodeError> {
        let len = usize::try_from(self.var_uint()?).map_err(|_| DecodeError::Overflow)?;
        let end = self.pos.checked_add(len).ok_or(DecodeError::Overflow)?;
        let out = self.buf.get(self.pos..end).ok_or(DecodeError::Eof)?;
        self.pos = end;
        Ok(out)
    }

    /// lib0 `varString`: UTF-8 bytes with their length first.
    pub fn string(&mut self) -> Result<&'a str, DecodeError> {
        std::str::from_utf8(self.bytes()?).map_err(|_| DecodeError::Utf8)
    }
}

/// A lib0 encoder.
#[derive(Default)]
pub struct Writer(pub Vec<u8>);

impl Writer {
    pub fn with_name(name: &str) -> Writer {
        let mut w = Writer(Vec::with_capacity(name.len() + 16));
        w.string(name);
        w
    }

    pub fn var_uint(&mut self, mut n: u64) -> &mut Self {
        while n >= 0x80 {
            self.0.push((n as u8) | 0x80);
            n >>= 7;
        }
        self.0.push(n as u8);
        self
    }

    pub fn bytes(&mut self, b: &[u8]) -> &mut Self {
        self.var_uint(b.len() as u64);
        self.0.extend_from_slice(b);
        self
    }

    pub fn string(&mut self, s: &str) -> &mut Self {
        self.bytes(s.as_bytes())
    }

    pub fn into_vec(self) -> Vec<u8> {
        self.0
    }
}

/// One decoded message about a document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message<'a> {
    /// The sender's state vector: answer with what it lacks.
    SyncStep1(&'a [u8]),
    /// What the receiver lacked: applied like an update.
    SyncStep2(&'a [u8]),
    Update(&'a [u8]),
    /// An awareness update (cursors, names), see [`super::awareness`].
    Awareness(&'a [u8]),
    /// Hocuspocus' token (our cookie already authenticated the socket, so it is ignored).
    AuthToken,
    /// y-protocols' permission-denied, or any other auth message a client should not send.
    AuthOther,
    QueryAwareness,
    /// Hocuspocus' stateless payload (ignored: we define none).
    Stateless,
    /// Hocuspocus: the client leaves the document.
    Close,
    /// Hocuspocus' sync status (a server-to-client message; ignored if a client sends it).
    SyncStatus,
}

impl Message<'_> {
    /// Whether the message changes the document.
    pub fn is_write(&self) -> bool {
        matches!(self, Message::SyncStep2(_) | Message::Update(_))
    }
}

/// Decodes one message (without a document name). Trailing bytes are an error: a frame is
/// exactly one message.
pub fn decode(buf: &[u8]) -> Result<Message<'_>, DecodeError> {
    let mut r = Reader::new(buf);
    let m = decode_from(&mut r)?;
    // y-protocols clients never append anything; hocuspocus may add fields to auth and
    // stateless messages, which are ignored anyway.
    if !r.is_done()
        && !matches!(
            m,
            Message::AuthToken | Message::AuthOther | Message::Stateless
        )
    {
        return Err(DecodeError::Trailing);
    }
    Ok(m)
}

fn decode_from<'a>(r: &mut Reader<'a>) -> Result<Message<'a>, DecodeError> {
    Ok(match r.var_uint()? {
        MSG_SYNC => match r.var_uint()? {
            SYNC_STEP1 => Message::SyncStep1(r.bytes()?),
            SYNC_STEP2 => Message::SyncStep2(r.bytes()?),
            SYNC_UPDATE => Message::Update(r.bytes()?),
            other => return Err(DecodeError::Unknown(other)),
        },
        MSG_AWARENESS => Message::Awareness(r.bytes()?),
        MSG_AUTH => match r.var_uint()? {
            HAUTH_TOKEN if !r.is_done() => {
                r.string()?;
                Message::AuthToken
            }
            _ => Message::AuthOther,
        },
        MSG_QUERY_AWARENESS => Message::QueryAwareness,
        MSG_STATELESS => {
            r.string()?;
            Message::Stateless
        }
        MSG_CLOSE => Message::Close,
        MSG_SYNC_STATUS => {
            r.var_uint()?;
            Message::SyncStatus
        }
        other => return Err(DecodeError::Unknown(other)),
    })
}

/// Splits a hocuspocus-framed message into the document name and the message bytes.
pub fn split_name(frame: &[u8]) -> Result<(&str, &[u8]), DecodeError> {
    let mut r = Reader::new(frame);
    let name = r.string()?;
    if name.len() > MAX_NAME {
        return Err(DecodeError::Overflow);
    }
    Ok((name, r.rest()))
}

/// How a connection frames its messages.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Framing {
    /// y-websocket: one message per frame, no name.
    Plain,
    /// Hocuspocus: the document's name first.
    Named(String),
}

impl Framing {
    fn writer(&self) -> Writer {
        match self {
            Framing::Plain => Writer::default(),
            Framing::Named(n) => Writer::with_name(n),
        }
    }

    pub fn is_named(&self) -> bool {
        matches!(self, Framing::Named(_))
    }

    pub fn sync(&self, sub: u64, payload: &[u8]) -> Vec<u8> {
        let mut w = self.writer();
        w.var_uint(MSG_SYNC).var_uint(sub).bytes(payload);
        w.into_vec()
    }

    pub fn awareness(&self, update: &[u8]) -> Vec<u8> {
        let mut w = self.writer();
        w.var_uint(MSG_AWARENESS).bytes(update);
        w.into_vec()
    }

    /// Refuses access: y-protocols' permission-denied, or hocuspocus' own.
    pub fn denied(&self, reason: &str) -> Vec<u8> {
        let mut w = self.writer();
        let sub = if self.is_named() {
            HAUTH_PERMISSION_DENIED
        } else {
            YAUTH_PERMISSION_DENIED
        };
        w.var_uint(MSG_AUTH).var_uint(sub).string(reason);
        w.into_vec()
    }

    /// Hocuspocus' answer to its token: the scope is `read-write` or `readonly`.
    pub fn authenticated(&self, writable: bool) -> Vec<u8> {
        let mut w = self.writer();
        let scope = if writable { "read-write" } else { "readonly" };
        w.var_uint(MSG_AUTH)
            .var_uint(HAUTH_AUTHENTICATED)
            .string(scope);
        w.into_vec()
    }

    /// Hocuspocus' sync status: whether the client's last update was stored.
    pub fn sync_status(&self, stored: bool) -> Vec<u8> {
        let mut w = self.writer();
        w.var_uint(MSG_SYNC_STATUS).var_uint(u64::from(stored));
        w.into_vec()
    }

    /// Hocuspocus' stateless message (we send errors as JSON this way).
    pub fn stateless(&self, payload: &str) -> Vec<u8> {
        let mut w = self.writer();
        w.var_uint(MSG_STATELESS).string(payload);
        w.into_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn var_uint_round_trips_and_matches_lib0() {
        // lib0 writes 300 as ac 02.
        let mut w = Writer::default();
        w.var_uint(300);
        assert_eq!(w.0, [0xac, 0x02]);
        for n in [0u64, 1, 127, 128, 16_383, 16_384, (1 << 53) - 1] {
            let mut w = Writer::default();
            w.var_uint(n);
            assert_eq!(Reader::new(&w.0).var_uint(), Ok(n));
        }
        // Past 2^53 - 1, and an endless continuation, are refused rather than wrapped.
        assert_eq!(
            Reader::new(&[0xff; 8]).var_uint(),
            Err(DecodeError::Overflow)
        );
        assert_eq!(Reader::new(&[0x80, 0x80]).var_uint(), Err(DecodeError::Eof));
    }

    #[test]
    fn decodes_the_messages_clients_send() {
        assert_eq!(decode(&[0, 0, 1, 0]), Ok(Message::SyncStep1(&[0])));
        assert_eq!(decode(&[0, 2, 2, 7, 8]), Ok(Message::Update(&[7, 8])));
        assert_eq!(decode(&[0, 1, 0]), Ok(Message::SyncStep2(&[])));
        assert_eq!(decode(&[1, 1, 0]), Ok(Message::Awareness(&[0])));
        assert_eq!(decode(&[2, 0, 0]), Ok(Message::AuthToken));
        assert_eq!(decode(&[3]), Ok(Message::QueryAwareness));
        assert_eq!(decode(&[7]), Ok(Message::Close));
        assert_eq!(decode(&[0, 3, 0]), Err(DecodeError::Unknown(3)));
        assert_eq!(decode(&[0, 2, 5, 1]), Err(DecodeError::Eof));
        assert_eq!(decode(&[0, 2, 1, 1, 9]), Err(DecodeError::Trailing));
        assert_eq!(decode(&[4]), Err(DecodeError::Unknown(4)));
        assert_eq!(decode(&[]), Err(DecodeError::Eof));
    }

    #[test]
    fn named_framing_prefixes_the_document() {
        let f = Framing::Named("post/7".into());
        let frame = f.sync(SYNC_UPDATE, &[1, 2]);
        let (name, rest) = split_name(&frame).unwrap();
        assert_eq!(name, "post/7");
        assert_eq!(decode(rest), Ok(Message::Update(&[1, 2])));
        assert_eq!(Framing::Plain.sync(SYNC_STEP1, &[0]), [0, 0, 1, 0]);
        assert_eq!(Framing::Plain.denied("x"), [2, 0, 1, b'x']);
        assert_eq!(
            f.authenticated(false)[7..],
            [2, 2, 8, b'r', b'e', b'a', b'd', b'o', b'n', b'l', b'y']
        );
    }

    proptest! {
        #[test]
        fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = decode(&bytes);
            let _ = split_name(&bytes).map(|(_, rest)| decode(rest));
        }
    }
}
