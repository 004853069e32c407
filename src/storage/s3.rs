//! Objects in an S3 bucket (AWS or any S3-compatible service), through `aws-sdk-s3`.
//!
//! Credentials come from the standard AWS environment variables (`AWS_ACCESS_KEY_ID`,
//! `AWS_SECRET_ACCESS_KEY`, optional `AWS_SESSION_TOKEN`); endpoint, region, bucket and
//! path-style addressing from our settings. The full AWS config loader (profiles, SSO, IMDS)
//! is left out: it doubles the dependency tree for credential sources a study server does not
//! use.

use std::path::Path;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_s3::Client;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{
    BehaviorVersion, Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation,
};
use aws_sdk_s3::primitives::ByteStream;

use super::{ObjectBody, ObjectInfo, ObjectStore, StorageError, valid_key};
use crate::config::Settings;

/// Keys asked for per listing request: S3's own maximum.
const LIST_PAGE: usize = 1000;
/// Connecting to the object service is quick or it is down.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// One attempt of one operation: a 50 MiB upload over a slow link to S3 fits comfortably.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(300);

pub struct S3Store {
    client: Client,
    bucket: String,
}

fn remote<E: std::error::Error + Send + Sync + 'static>(
    e: aws_sdk_s3::error::SdkError<E>,
) -> StorageError {
    StorageError::Remote(aws_sdk_s3::error::DisplayErrorContext(e).to_string())
}

impl S3Store {
    pub async fn connect(settings: &Settings, bucket: &str) -> anyhow::Result<Self> {
        let key = std::env::var("AWS_ACCESS_KEY_ID").map_err(|_| {
            anyhow::anyhow!("S3 storage (--s3-bucket) needs AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in the environment")
        })?;
        let secret = std::env::var("AWS_SECRET_ACCESS_KEY").map_err(|_| {
            anyhow::anyhow!(
                "S3 storage (--s3-bucket) needs AWS_SECRET_ACCESS_KEY in the environment"
            )
        })?;
        let token = std::env::var("AWS_SESSION_TOKEN").ok();
        let mut conf = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(settings.s3_region.clone()))
            .credentials_provider(Credentials::new(key, secret, token, None, "environment"))
            .force_path_style(settings.s3_path_style)
            // Many S3-compatible services do not know the newer default checksums.
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(CONNECT_TIMEOUT)
                    .operation_attempt_timeout(ATTEMPT_TIMEOUT)
                    .build(),
            );
        if let Some(endpoint) = &settings.s3_endpoint {
            conf = conf.endpoint_url(endpoint);
        }
        let store = S3Store {
            client: Client::from_conf(conf.build()),
            bucket: bucket.to_string(),
        };
        store.ensure_bucket().await?;
        Ok(store)
    }

    /// Startup check that the bucket is reachable; a missing bucket is created (a fresh
    /// deployment or test needs no manual step).
    async fn ensure_bucket(&self) -> anyhow::Result<()> {
        match self.client.head_bucket().bucket(&self.bucket).send().await {
            Ok(_) => Ok(()),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) => {
                self.client
                    .create_bucket()
                    .bucket(&self.bucket)
                    .send()
                    .await
                    .map_err(|e| {
                        anyhow::anyhow!("creating S3 bucket {}: {}", self.bucket, remote(e))
                    })?;
                tracing::info!(bucket = %self.bucket, "created S3 bucket");
                Ok(())
            }
            Err(e) => Err(anyhow::anyhow!(
                "S3 bucket {} is not reachable (check --s3-endpoint and credentials): {}",
                self.bucket,
                remote(e)
            )),
        }
    }
}

#[async_trait]
impl ObjectStore for S3Store {
    fn kind(&self) -> &'static str {
        "s3"
    }

    async fn put_file(
        &self,
        key: &str,
        path: &Path,
        len: u64,
        content_type: &str,
    ) -> Result<(), StorageError> {
        if !valid_key(key) {
            return Err(StorageError::NotFound);
        }
        // Streamed from the spool file (and re-readable for retries), never held in memory.
        let body = ByteStream::from_path(path)
            .await
            .map_err(|e| StorageError::Io(std::io::Error::other(e)))?;
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .content_length(len as i64)
            .body(body)
            .send()
            .await
            .map_err(remote)?;
        Ok(())
    }

    async fn get(&self, key: &str, start: u64, end: u64) -> Result<ObjectBody, StorageError> {
        if !valid_key(key) {
            return Err(StorageError::NotFound);
        }
        let out = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .range(format!("bytes={start}-{end}"))
            .send()
            .await
            .map_err(|e| match e.as_service_error() {
                Some(s) if s.is_no_such_key() => StorageError::NotFound,
                _ => remote(e),
            })?;
        Ok(Box::pin(out.body.into_async_read()))
    }

    async fn delete(&self, key: &str) -> Result<(), StorageError> {
        if !valid_key(key) {
            return Ok(());
        }
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(remote)?;
        Ok(())
    }

    async fn list_after(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<ObjectInfo>, StorageError> {
        // S3 lists keys in ascending order; a page may hold other objects (not ours) that are
        // skipped, so keep asking until `limit` of ours are found or the bucket ends.
        let mut out = Vec::new();
        let mut start = after.map(str::to_string);
        while out.len() < limit {
            let page = self
                .client
                .list_objects_v2()
                .bucket(&self.bucket)
                .set_start_after(start.take())
                .max_keys(LIST_PAGE.min(limit - out.len()) as i32)
                .send()
                .await
                .map_err(remote)?;
            for o in page.contents() {
                start = o.key().map(str::to_string);
                let Some(key) = o.key().filter(|k| valid_key(k)) else {
                    continue;
                };
                out.push(ObjectInfo {
                    key: key.to_string(),
                    size: o.size().unwrap_or(0).max(0) as u64,
                    modified: o
                        .last_modified()
                        .and_then(|d| d.to_millis().ok())
                        .unwrap_or(0),
                });
            }
            if page.is_truncated() != Some(true) || start.is_none() {
                break;
            }
        }
        Ok(out)
    }
}
