//! Where actors' non-volatile `Storage` lives, so a crash loses only volatile state.

use std::collections::HashMap;
use std::sync::Mutex;

use stateright::actor::Id;

/// Why a storage backend could not save or load: the runtime's layer, whatever the backend.
/// A backend's own errors (the data directory's [`crate::disk::DiskError`]) convert into it,
/// keeping their text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StorageError {
    /// The backend's medium failed (disk full, I/O error, ...).
    #[error("storage I/O failed: {0}")]
    Io(String),
    /// Stored bytes could not be turned back into `Storage`.
    #[error("stored state is corrupt: {0}")]
    Corrupt(String),
    /// The backend's internal lock was poisoned by a panicking writer.
    #[error("storage lock poisoned")]
    Poisoned,
}

impl StorageError {
    /// An I/O failure described by `why` (for backends wrapping other errors).
    pub fn new(why: impl Into<String>) -> Self {
        StorageError::Io(why.into())
    }
}

/// Persists each actor's `Storage`. `save` must be durable when it returns `Ok`,
/// because the runtime releases the step's messages right after (write-ahead).
///
/// Calls are synchronous. A backend that blocks (files, fsync) says so with
/// [`StorageBackend::is_blocking`], and the runtime then calls it on tokio's blocking
/// threads while the actor's task waits (its step's messages still leave only after the
/// save): a slow disk slows only the actor that saves, never another actor's timers or
/// messages. Other backends are called on the actor's task.
pub trait StorageBackend<S>: Send + Sync {
    /// Durably replaces what is stored for `id`.
    fn save(&self, id: Id, storage: &S) -> Result<(), StorageError>;
    /// What was last saved for `id`, or `None` if nothing was.
    fn load(&self, id: Id) -> Result<Option<S>, StorageError>;
    /// Whether `save` and `load` block on I/O (and so must stay off the async workers).
    fn is_blocking(&self) -> bool {
        false
    }
}

/// Keeps storage in process memory: survives an actor's crash and restart
/// (the runtime's notion of a crash), not a process exit.
#[derive(Debug)]
pub struct MemoryStorage<S> {
    saved: Mutex<HashMap<Id, S>>,
}

impl<S> Default for MemoryStorage<S> {
    fn default() -> Self {
        MemoryStorage {
            saved: Mutex::new(HashMap::new()),
        }
    }
}

impl<S> MemoryStorage<S> {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

impl<S: Clone + Send> StorageBackend<S> for MemoryStorage<S> {
    fn save(&self, id: Id, storage: &S) -> Result<(), StorageError> {
        let mut saved = self.saved.lock().map_err(|_| StorageError::Poisoned)?;
        saved.insert(id, storage.clone());
        Ok(())
    }

    fn load(&self, id: Id) -> Result<Option<S>, StorageError> {
        let saved = self.saved.lock().map_err(|_| StorageError::Poisoned)?;
        Ok(saved.get(&id).cloned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_storage_keeps_last_save_per_id() {
        let store = MemoryStorage::new();
        assert_eq!(store.load(Id::from(0)), Ok(None));
        store.save(Id::from(0), &1u64).expect("save");
        store.save(Id::from(0), &2u64).expect("save");
        store.save(Id::from(1), &7u64).expect("save");
        assert_eq!(store.load(Id::from(0)), Ok(Some(2)));
        assert_eq!(store.load(Id::from(1)), Ok(Some(7)));
        assert_eq!(store.load(Id::from(2)), Ok(None));
    }
}
