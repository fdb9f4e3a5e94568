//! The local-directory store: staged writes, fsync, rename into place.
// SKELETON: helper B implements this file.

use std::path::PathBuf;

use super::StoreError;

/// A vault in a local directory.
#[derive(Debug)]
pub struct LocalStore {
    #[allow(dead_code)]
    root: PathBuf,
}

impl LocalStore {
    /// Opens (creating if needed) the directory `root`.
    pub fn open(root: PathBuf) -> Result<Self, StoreError> {
        Ok(LocalStore { root })
    }
}

#[async_trait::async_trait]
impl super::Store for LocalStore {
    fn describe(&self) -> String {
        "local (not implemented)".into()
    }
    async fn put(&self, _key: &str, _data: bytes::Bytes) -> Result<(), StoreError> {
        Err(unimplemented_store())
    }
    async fn put_multipart(
        &self,
        _key: &str,
        _opts: super::UploadOptions,
    ) -> Result<Box<dyn super::Upload>, StoreError> {
        Err(unimplemented_store())
    }
    async fn get(&self, _key: &str) -> Result<bytes::Bytes, StoreError> {
        Err(unimplemented_store())
    }
    async fn get_stream(&self, _key: &str) -> Result<super::ObjectReader, StoreError> {
        Err(unimplemented_store())
    }
    async fn list(&self, _prefix: &str) -> Result<Vec<super::ObjectMeta>, StoreError> {
        Err(unimplemented_store())
    }
    async fn delete(&self, _key: &str) -> Result<(), StoreError> {
        Err(unimplemented_store())
    }
}

fn unimplemented_store() -> StoreError {
    StoreError::Backend {
        store: "local".into(),
        message: "not implemented".into(),
        source: None,
    }
}
