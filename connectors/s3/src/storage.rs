//! The S3 side: a client for the configured endpoint, a start-up check that the
//! bucket is reachable, and uploads (multipart above `s3.part.size`, aborted on
//! failure so no incomplete upload is left behind).

use std::time::Duration;

use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_s3::error::{DisplayErrorContext, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::primitives::DateTime;
use aws_sdk_s3::types::{
    BucketLifecycleConfiguration, ChecksumAlgorithm, CompletedMultipartUpload, CompletedPart,
    ExpirationStatus, LifecycleExpiration, LifecycleRule, LifecycleRuleFilter, ObjectLockEnabled,
    ObjectLockMode, StorageClass,
};
use aws_sdk_s3::Client;

use async_trait::async_trait;
use sluice_api::ConnectError;

use crate::config::S3SinkConfig;

/// How long connecting to the store, and then its first byte of an answer,
/// may take before the request fails as retriable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const READ_TIMEOUT: Duration = Duration::from_secs(120);

/// Where a bucket is and how to reach it.
#[derive(Debug, Clone)]
pub struct Store {
    pub bucket: String,
    pub region: String,
    pub endpoint: Option<String>,
    pub path_style: bool,
    pub credentials: Option<(String, String)>,
}

/// A multipart upload in progress.
#[derive(Debug, Clone)]
pub struct Multipart {
    pub key: String,
    pub id: String,
}

/// How one object is written.
#[derive(Debug, Clone, Default)]
pub struct PutOptions {
    /// Ask S3 to verify a SHA-256 checksum of the body (audit tier).
    pub sha256: bool,
    /// Object Lock COMPLIANCE retention until this Unix time (audit tier).
    pub retain_until: Option<i64>,
    pub storage_class: Option<String>,
}

/// A finished part of a multipart upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    /// From 1.
    pub number: i32,
    pub etag: Option<String>,
}

/// What the sink writes through: whole objects, multipart uploads, and the
/// reads the audit tier needs. [`Storage`] is the S3 one; the task holds an
/// `Arc<dyn ObjectStore>`, so its logic also runs against a store in memory.
#[async_trait]
pub trait ObjectStore: Send + Sync {
    /// Uploads one object; once this returns, the object is durable.
    async fn put(
        &self,
        key: &str,
        bytes: Vec<u8>,
        options: &PutOptions,
    ) -> Result<(), ConnectError>;
    /// The part size uploads are cut into.
    fn part_size(&self) -> usize;
    async fn start_multipart(
        &self,
        key: &str,
        options: &PutOptions,
    ) -> Result<Multipart, ConnectError>;
    /// Uploads part `number` (from 1).
    async fn upload_part(
        &self,
        upload: &Multipart,
        number: usize,
        bytes: Vec<u8>,
    ) -> Result<Part, ConnectError>;
    /// Completes an upload: only now does the object exist.
    async fn complete(&self, upload: &Multipart, parts: Vec<Part>) -> Result<(), ConnectError>;
    /// Aborts an upload, so no part is left behind; failures are only logged
    /// (the original error is what matters to the caller).
    async fn abort(&self, upload: &Multipart);
    /// Uploads under `prefix` that were started and never completed.
    async fn incomplete_uploads(&self, prefix: &str) -> Result<Vec<Multipart>, ConnectError>;
    /// An object's bytes, if it exists.
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, ConnectError>;
    /// The keys under `prefix`.
    async fn list(&self, prefix: &str) -> Result<Vec<String>, ConnectError>;
}

/// An S3 bucket (or any S3 API: MinIO, s3s).
pub struct Storage {
    client: Client,
    bucket: String,
    part_size: usize,
}

/// Classifies an SDK failure: timeouts, connection failures and 5xx answers are
/// worth retrying; anything else needs a person.
fn sdk_error<E: std::error::Error + Send + Sync + 'static>(
    what: &str,
    e: SdkError<E, HttpResponse>,
) -> ConnectError {
    let retriable = match &e {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) => true,
        SdkError::ServiceError(s) => s.raw().status().is_server_error(),
        _ => false,
    };
    let message = format!("{what}: {}", DisplayErrorContext(&e));
    if retriable {
        ConnectError::retriable(message)
    } else {
        ConnectError::fatal(message)
    }
}

impl Storage {
    pub async fn connect(config: &S3SinkConfig, part_size: usize) -> Result<Self, ConnectError> {
        let store = Store {
            bucket: config.bucket.clone(),
            region: config.region.clone(),
            endpoint: config.endpoint.clone(),
            path_style: config.path_style,
            credentials: config.credentials.clone(),
        };
        Self::open(&store, part_size).await
    }

    /// Opens a bucket and checks it is reachable.
    pub async fn open(config: &Store, part_size: usize) -> Result<Self, ConnectError> {
        // Without these the SDK waits for ever on a store that accepted the
        // connection but never answers: the task would hang RUNNING instead
        // of retrying with a reason in its status.
        let timeouts = aws_config::timeout::TimeoutConfig::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .read_timeout(READ_TIMEOUT)
            .build();
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new(config.region.clone()))
            .timeout_config(timeouts);
        if let Some((key, secret)) = &config.credentials {
            loader = loader.credentials_provider(Credentials::new(
                key,
                secret,
                None,
                None,
                "sluice-config",
            ));
        }
        let shared = loader.load().await;
        let mut builder =
            aws_sdk_s3::config::Builder::from(&shared).force_path_style(config.path_style);
        if let Some(url) = &config.endpoint {
            builder = builder.endpoint_url(url);
        }
        let client = Client::from_conf(builder.build());
        let storage = Self {
            client,
            bucket: config.bucket.clone(),
            part_size,
        };
        storage.check_bucket().await?;
        Ok(storage)
    }

    /// Fails with a message that says what to fix: a missing bucket, refused
    /// credentials, an unreachable endpoint.
    async fn check_bucket(&self) -> Result<(), ConnectError> {
        match self.client.head_bucket().bucket(&self.bucket).send().await {
            Ok(_) => Ok(()),
            Err(SdkError::ServiceError(e)) => {
                let status = e.raw().status().as_u16();
                let why = match status {
                    404 => "does not exist (create it first)".to_owned(),
                    403 => {
                        "refused access: check aws.access.key.id / aws.secret.access.key".to_owned()
                    }
                    other => format!("answered HTTP {other}"),
                };
                Err(ConnectError::fatal(format!(
                    "bucket '{}' {why}",
                    self.bucket
                )))
            }
            Err(e) => Err(sdk_error(
                &format!("cannot reach S3 to check bucket '{}'", self.bucket),
                e,
            )),
        }
    }

    /// Sets (or refreshes) the archive tier's lifecycle rule: objects under
    /// `prefix` expire after `days`. Other rules on the bucket are kept.
    pub async fn ensure_lifecycle(
        &self,
        rule_id: &str,
        prefix: &str,
        days: i32,
    ) -> Result<(), ConnectError> {
        let mut rules: Vec<LifecycleRule> = match self
            .client
            .get_bucket_lifecycle_configuration()
            .bucket(&self.bucket)
            .send()
            .await
        {
            Ok(out) => out.rules().to_vec(),
            Err(SdkError::ServiceError(e)) if e.raw().status().as_u16() == 404 => Vec::new(),
            Err(e) => return Err(self.unsupported("lifecycle rules (s3.tier=archive)", e)),
        };
        rules.retain(|r| r.id() != Some(rule_id));
        let rule = LifecycleRule::builder()
            .id(rule_id)
            .filter(LifecycleRuleFilter::builder().prefix(prefix).build())
            .status(ExpirationStatus::Enabled)
            .expiration(LifecycleExpiration::builder().days(days).build())
            .build()
            .map_err(|e| ConnectError::fatal(format!("cannot build the lifecycle rule: {e}")))?;
        rules.push(rule);
        let config = BucketLifecycleConfiguration::builder()
            .set_rules(Some(rules))
            .build()
            .map_err(|e| {
                ConnectError::fatal(format!("cannot build the lifecycle configuration: {e}"))
            })?;
        self.client
            .put_bucket_lifecycle_configuration()
            .bucket(&self.bucket)
            .lifecycle_configuration(config)
            .send()
            .await
            .map_err(|e| self.unsupported("lifecycle rules (s3.tier=archive)", e))?;
        Ok(())
    }

    /// Whether the bucket has Object Lock enabled.
    pub async fn object_lock_enabled(&self) -> Result<bool, ConnectError> {
        match self
            .client
            .get_object_lock_configuration()
            .bucket(&self.bucket)
            .send()
            .await
        {
            Ok(out) => Ok(out
                .object_lock_configuration()
                .and_then(|c| c.object_lock_enabled())
                .is_some_and(|e| *e == ObjectLockEnabled::Enabled)),
            Err(SdkError::ServiceError(e))
                if matches!(e.raw().status().as_u16(), 404 | 400 | 501) =>
            {
                Ok(false)
            }
            Err(e) => Err(sdk_error(
                &format!(
                    "cannot read the Object Lock configuration of '{}'",
                    self.bucket
                ),
                e,
            )),
        }
    }

    fn unsupported<E: std::error::Error + Send + Sync + 'static>(
        &self,
        what: &str,
        e: SdkError<E, HttpResponse>,
    ) -> ConnectError {
        if let SdkError::ServiceError(s) = &e {
            if s.raw().status().as_u16() == 501 {
                return ConnectError::fatal(format!(
                    "the store behind bucket '{}' does not implement {what}",
                    self.bucket
                ));
            }
        }
        sdk_error(&format!("cannot set {what} on bucket '{}'", self.bucket), e)
    }
}

#[async_trait]
impl ObjectStore for Storage {
    /// Uploads one object; once this returns, the object is durable.
    async fn put(
        &self,
        key: &str,
        bytes: Vec<u8>,
        options: &PutOptions,
    ) -> Result<(), ConnectError> {
        // Object Lock and checksummed puts go up whole: S3 takes up to 5 GB in one
        // PUT, and a part-wise checksum would not be the object's SHA-256.
        if bytes.len() <= self.part_size || options.sha256 || options.retain_until.is_some() {
            let mut put = self
                .client
                .put_object()
                .bucket(&self.bucket)
                .key(key)
                .body(ByteStream::from(bytes));
            if options.sha256 {
                put = put.checksum_algorithm(ChecksumAlgorithm::Sha256);
            }
            if let Some(until) = options.retain_until {
                put = put
                    .object_lock_mode(ObjectLockMode::Compliance)
                    .object_lock_retain_until_date(DateTime::from_secs(until));
            }
            if let Some(class) = &options.storage_class {
                put = put.storage_class(StorageClass::from(class.as_str()));
            }
            put.send()
                .await
                .map_err(|e| sdk_error(&format!("cannot upload '{key}'"), e))?;
            return Ok(());
        }
        let upload = self.start_multipart(key, options).await?;
        let mut parts = Vec::new();
        for chunk in bytes.chunks(self.part_size) {
            match self
                .upload_part(&upload, parts.len() + 1, chunk.to_vec())
                .await
            {
                Ok(p) => parts.push(p),
                Err(e) => {
                    self.abort(&upload).await;
                    return Err(e);
                }
            }
        }
        self.complete(&upload, parts).await
    }

    /// The part size uploads are cut into.
    fn part_size(&self) -> usize {
        self.part_size
    }

    async fn start_multipart(
        &self,
        key: &str,
        options: &PutOptions,
    ) -> Result<Multipart, ConnectError> {
        let out = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .set_storage_class(options.storage_class.as_deref().map(StorageClass::from))
            .send()
            .await
            .map_err(|e| sdk_error(&format!("cannot start a multipart upload of '{key}'"), e))?;
        Ok(Multipart {
            key: key.to_owned(),
            id: out.upload_id().unwrap_or_default().to_owned(),
        })
    }

    /// Uploads part `number` (from 1).
    async fn upload_part(
        &self,
        upload: &Multipart,
        number: usize,
        bytes: Vec<u8>,
    ) -> Result<Part, ConnectError> {
        let number = i32::try_from(number).map_err(|_| ConnectError::fatal("too many parts"))?;
        let out = self
            .client
            .upload_part()
            .bucket(&self.bucket)
            .key(&upload.key)
            .upload_id(&upload.id)
            .part_number(number)
            .body(ByteStream::from(bytes))
            .send()
            .await
            .map_err(|e| {
                sdk_error(
                    &format!("cannot upload part {number} of '{}'", upload.key),
                    e,
                )
            })?;
        Ok(Part {
            number,
            etag: out.e_tag().map(str::to_owned),
        })
    }

    /// Completes an upload: only now does the object exist.
    async fn complete(&self, upload: &Multipart, parts: Vec<Part>) -> Result<(), ConnectError> {
        let result = self
            .client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(&upload.key)
            .upload_id(&upload.id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(
                        parts
                            .into_iter()
                            .map(|p| {
                                CompletedPart::builder()
                                    .part_number(p.number)
                                    .set_e_tag(p.etag)
                                    .build()
                            })
                            .collect(),
                    ))
                    .build(),
            )
            .send()
            .await;
        if let Err(e) = result {
            let error = sdk_error(
                &format!("cannot complete the upload of '{}'", upload.key),
                e,
            );
            self.abort(upload).await;
            return Err(error);
        }
        Ok(())
    }

    /// Aborts an upload, so no part is left behind; failures are only logged
    /// (the original error is what matters to the caller).
    async fn abort(&self, upload: &Multipart) {
        if let Err(e) = self
            .client
            .abort_multipart_upload()
            .bucket(&self.bucket)
            .key(&upload.key)
            .upload_id(&upload.id)
            .send()
            .await
        {
            tracing::warn!(key = %upload.key, "cannot abort a multipart upload: {}", DisplayErrorContext(&e));
        }
    }

    /// Uploads under `prefix` that were started and never completed.
    async fn incomplete_uploads(&self, prefix: &str) -> Result<Vec<Multipart>, ConnectError> {
        let mut out = Vec::new();
        let (mut key_marker, mut id_marker) = (None::<String>, None::<String>);
        loop {
            let page = self
                .client
                .list_multipart_uploads()
                .bucket(&self.bucket)
                .prefix(prefix)
                .set_key_marker(key_marker.clone())
                .set_upload_id_marker(id_marker.clone())
                .send()
                .await;
            let page = match page {
                Ok(p) => p,
                // Cleanup is best effort: a store without the API cannot list what
                // a crash left, and an incomplete upload is invisible anyway.
                Err(SdkError::ServiceError(e)) if e.raw().status().as_u16() == 501 => {
                    tracing::warn!(bucket = %self.bucket, "the store cannot list incomplete uploads; uploads left by a crash are not cleaned up");
                    return Ok(out);
                }
                Err(e) => {
                    return Err(sdk_error(
                        &format!("cannot list incomplete uploads under '{prefix}'"),
                        e,
                    ))
                }
            };
            for u in page.uploads() {
                if let (Some(k), Some(id)) = (u.key(), u.upload_id()) {
                    out.push(Multipart {
                        key: k.to_owned(),
                        id: id.to_owned(),
                    });
                }
            }
            if page.is_truncated() != Some(true) {
                return Ok(out);
            }
            key_marker = page.next_key_marker().map(str::to_owned);
            id_marker = page.next_upload_id_marker().map(str::to_owned);
        }
    }

    /// The current version of an object; `None` when there is none.
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, ConnectError> {
        match self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(out) => {
                let data =
                    out.body.collect().await.map_err(|e| {
                        ConnectError::retriable(format!("cannot read '{key}': {e}"))
                    })?;
                Ok(Some(data.into_bytes().to_vec()))
            }
            Err(SdkError::ServiceError(e)) if e.raw().status().as_u16() == 404 => Ok(None),
            Err(e) => Err(sdk_error(&format!("cannot read '{key}'"), e)),
        }
    }

    /// Every key under `prefix`.
    async fn list(&self, prefix: &str) -> Result<Vec<String>, ConnectError> {
        let mut keys = Vec::new();
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(prefix)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| sdk_error(&format!("cannot list '{prefix}'"), e))?;
            keys.extend(
                page.contents()
                    .iter()
                    .filter_map(|o| o.key().map(str::to_owned)),
            );
        }
        Ok(keys)
    }
}
