//! The S3 side: a client for the configured endpoint, a start-up check that the
//! bucket is reachable, and uploads (multipart above `s3.part.size`, aborted on
//! failure so no incomplete upload is left behind).

use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_s3::error::{DisplayErrorContext, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use aws_sdk_s3::Client;
use sluice_api::ConnectError;

use crate::config::S3SinkConfig;

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
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new(config.region.clone()));
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

    /// Uploads one object; once this returns, the object is durable.
    pub async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), ConnectError> {
        if bytes.len() <= self.part_size {
            self.client
                .put_object()
                .bucket(&self.bucket)
                .key(key)
                .body(ByteStream::from(bytes))
                .send()
                .await
                .map_err(|e| sdk_error(&format!("cannot upload '{key}'"), e))?;
            return Ok(());
        }
        let upload = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| sdk_error(&format!("cannot start a multipart upload of '{key}'"), e))?;
        let id = upload.upload_id().unwrap_or_default().to_owned();
        match self.upload_parts(key, &id, &bytes).await {
            Ok(()) => Ok(()),
            Err(e) => {
                // Never leave a dangling upload: abort, and report the first error.
                if let Err(abort) = self
                    .client
                    .abort_multipart_upload()
                    .bucket(&self.bucket)
                    .key(key)
                    .upload_id(&id)
                    .send()
                    .await
                {
                    tracing::warn!(
                        key,
                        "cannot abort a failed multipart upload: {}",
                        DisplayErrorContext(&abort)
                    );
                }
                Err(e)
            }
        }
    }

    async fn upload_parts(&self, key: &str, id: &str, bytes: &[u8]) -> Result<(), ConnectError> {
        let mut parts = Vec::new();
        for (i, chunk) in bytes.chunks(self.part_size).enumerate() {
            let number = i32::try_from(i + 1).map_err(|_| ConnectError::fatal("too many parts"))?;
            let part = self
                .client
                .upload_part()
                .bucket(&self.bucket)
                .key(key)
                .upload_id(id)
                .part_number(number)
                .body(ByteStream::from(chunk.to_vec()))
                .send()
                .await
                .map_err(|e| sdk_error(&format!("cannot upload part {number} of '{key}'"), e))?;
            parts.push(
                CompletedPart::builder()
                    .part_number(number)
                    .set_e_tag(part.e_tag().map(str::to_owned))
                    .build(),
            );
        }
        self.client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
            .send()
            .await
            .map_err(|e| sdk_error(&format!("cannot complete the upload of '{key}'"), e))?;
        Ok(())
    }
}
