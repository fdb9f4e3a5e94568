//! The S3 store (aws-sdk-s3): multipart uploads with growing part size,
//! bounded parts in flight, retries, abort on failure; paginated listing.
// SKELETON: helper S implements this file.

use crate::cli::VaultArgs;

use super::StoreError;

/// A vault in an S3 bucket (or an S3-compatible server).
#[derive(Debug)]
pub struct S3Store {
    #[allow(dead_code)]
    bucket: String,
    #[allow(dead_code)]
    prefix: String,
}

impl S3Store {
    /// Opens `bucket[/prefix]` with the standard AWS configuration chain.
    pub async fn open(spec: &str, args: &VaultArgs) -> Result<Self, StoreError> {
        let _ = args;
        let (bucket, prefix) = spec.split_once('/').unwrap_or((spec, ""));
        Ok(S3Store {
            bucket: bucket.to_string(),
            prefix: prefix.trim_end_matches('/').to_string(),
        })
    }
}

#[async_trait::async_trait]
impl super::Store for S3Store {
    fn describe(&self) -> String {
        "s3 (not implemented)".into()
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
        store: "s3".into(),
        message: "not implemented".into(),
        source: None,
    }
}
