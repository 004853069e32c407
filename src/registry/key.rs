//! Actor keys: a registered kind plus an id. The set of kinds is open: a new keyed actor
//! kind declares `KIND` and an id type, and nothing here changes.

use std::sync::RwLock;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::ids::{PostId, RoomId, StudyId, UserId};

/// The kind of a keyed actor (`"chat_room"`, `"study"`, …): its `KeyedActor::KIND`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Kind(&'static str);

/// Kind names that may arrive from the wire: every kind registered with an
/// [`super::ActorKinds`]. A fixed set of names from the code, so it stays tiny.
static KNOWN_KINDS: RwLock<Vec<&'static str>> = RwLock::new(Vec::new());

impl Kind {
    pub const fn new(name: &'static str) -> Kind {
        Kind(name)
    }

    pub fn name(self) -> &'static str {
        self.0
    }

    /// Makes the kind decodable from the wire (registration does this).
    pub(super) fn make_known(self) {
        let mut known = KNOWN_KINDS.write().expect("kinds lock");
        if !known.contains(&self.0) {
            known.push(self.0);
        }
    }

    /// The registered kind with this name.
    pub fn known(name: &str) -> Option<Kind> {
        let known = KNOWN_KINDS.read().expect("kinds lock");
        known.iter().find(|k| **k == name).map(|k| Kind(k))
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

impl Serialize for Kind {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.0)
    }
}

impl<'de> Deserialize<'de> for Kind {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        Kind::known(&name)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown actor kind {name:?}")))
    }
}

/// An actor's id inside its key: every id we key actors by is one or two integers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum KeyId {
    One(i64),
    Pair(i64, i64),
}

impl std::fmt::Display for KeyId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeyId::One(a) => write!(f, "{a}"),
            KeyId::Pair(a, b) => write!(f, "{a}-{b}"),
        }
    }
}

/// An id type keyed actors use.
pub trait ActorId: Copy + Eq + std::hash::Hash + std::fmt::Debug + Send + Sync + 'static {
    fn key_id(self) -> KeyId;
    fn from_key_id(id: KeyId) -> Option<Self>;
}

macro_rules! one_int_ids {
    ($($t:ty),*) => {$(
        impl ActorId for $t {
            fn key_id(self) -> KeyId {
                KeyId::One(self.0)
            }
            fn from_key_id(id: KeyId) -> Option<Self> {
                match id {
                    KeyId::One(a) => Some(Self(a)),
                    KeyId::Pair(..) => None,
                }
            }
        }
    )*};
}
one_int_ids!(UserId, StudyId, RoomId, PostId);

impl ActorId for (UserId, UserId) {
    fn key_id(self) -> KeyId {
        KeyId::Pair(self.0.0, self.1.0)
    }
    fn from_key_id(id: KeyId) -> Option<Self> {
        match id {
            KeyId::Pair(a, b) => Some((UserId(a), UserId(b))),
            KeyId::One(_) => None,
        }
    }
}

impl ActorId for u64 {
    fn key_id(self) -> KeyId {
        KeyId::One(self as i64)
    }
    fn from_key_id(id: KeyId) -> Option<Self> {
        match id {
            KeyId::One(a) => Some(a as u64),
            KeyId::Pair(..) => None,
        }
    }
}

/// The key of every keyed actor: which kind, which one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ActorKey {
    pub kind: Kind,
    pub id: KeyId,
}

impl ActorKey {
    pub fn new(kind: Kind, id: impl ActorId) -> ActorKey {
        ActorKey {
            kind,
            id: id.key_id(),
        }
    }

    /// The kind's name, for logs and metric labels.
    pub fn kind(&self) -> &'static str {
        self.kind.name()
    }

    /// This key's id as `A`'s id type, if the key is of kind `A`.
    pub fn id_of<A: super::KeyedActor>(&self) -> Option<A::Id> {
        if self.kind.name() == A::KIND {
            A::Id::from_key_id(self.id)
        } else {
            None
        }
    }
}

impl std::fmt::Display for ActorKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.kind, self.id)
    }
}

/// What a client is told to re-fetch when an actor it relies on restarted: the `scope` of
/// the `resync` frame, and the id field that names the thing (`study_id`, `room_id`), if any.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResyncScope {
    pub scope: &'static str,
    pub field: Option<(&'static str, i64)>,
}

impl ResyncScope {
    /// Just the kind, no id: the client re-fetches everything of that scope.
    pub const fn kind(scope: &'static str) -> ResyncScope {
        ResyncScope { scope, field: None }
    }

    pub const fn with(scope: &'static str, field: &'static str, id: i64) -> ResyncScope {
        ResyncScope {
            scope,
            field: Some((field, id)),
        }
    }
}

impl Serialize for ResyncScope {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("scope", self.scope)?;
        if let Some((field, id)) = self.field {
            m.serialize_entry(field, &id)?;
        }
        m.end()
    }
}
