//! S3-compatible services that answer differently from AWS: a 200 whose body has
//! another root element (the write took effect, and the SDK cannot read the answer),
//! and a 200 carrying an `<Error>` document (the write did not). Ferry judges by what
//! the bucket holds, as rclone and boto3 do.

use ferry_tests::s3::{Answer, ServerSideOp};

use super::*;

/// 5 MiB parts: the 20 MiB file goes as a multipart upload of four parts.
const FIVE_MIB_PARTS: [(&str, &str); 1] = [("FERRY_AGENT_PART_SIZE_MIB", "5")];

fn files() -> BTreeMap<String, Vec<u8>> {
    mixed(41, LARGE)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_completed_upload_whose_answer_has_another_root_is_confirmed_and_kept() {
    let upload = FilesToBucket::start(files(), "scans", "foreign", &FIVE_MIB_PARTS).await;
    upload
        .s3
        .faults()
        .answer(ServerSideOp::CompleteMultipartUpload, Answer::ForeignRoot);
    let job = upload.plan(pb::VerifyMode::Full).await;
    upload.completes(&job).await;
    upload.holds_the_source().await;
    assert!(
        upload.s3.faults().foreign_roots() >= 1,
        "the odd answer was given"
    );
    let objects = upload.client.list_job_objects(&job.id, None).await.unwrap();
    assert!(
        objects
            .iter()
            .all(|o| o.status == pb::ObjectStatus::Verified as i32 && o.attempts == 1),
        "each object copied once and verified: {objects:#?}"
    );
    assert!(
        upload
            .agent
            .log()
            .contains("a HEAD shows the object written"),
        "{}",
        upload.agent.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_temporary_error_inside_a_200_is_retried_and_the_copy_completes() {
    let upload = FilesToBucket::start(files(), "scans", "embedded", &FIVE_MIB_PARTS).await;
    // The SDK sends a request that failed so three times: all three answers carry the
    // error, and the agent's second try goes through.
    upload.s3.faults().answer_next(
        ServerSideOp::CompleteMultipartUpload,
        3,
        Answer::EmbeddedError("InternalError"),
    );
    let job = upload.plan(pb::VerifyMode::Quick).await;
    upload.completes(&job).await;
    upload.holds_the_source().await;
    assert_eq!(upload.s3.faults().embedded_errors(), 3);
    let objects = upload.client.list_job_objects(&job.id, None).await.unwrap();
    let large = objects.iter().find(|o| o.size == LARGE as u64).unwrap();
    assert_eq!(large.attempts, 2, "{large:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_inside_a_200_fails_the_object_for_good_with_its_code() {
    let upload = FilesToBucket::start(files(), "scans", "refused", &FIVE_MIB_PARTS).await;
    upload.s3.faults().answer(
        ServerSideOp::CompleteMultipartUpload,
        Answer::EmbeddedError("AccessDenied"),
    );
    let job = upload.plan(pb::VerifyMode::Quick).await;
    let done = wait_for_end(&upload.client, &job.id, TIMEOUT).await;
    assert_eq!(done.state, pb::JobState::Failed as i32, "{done:#?}");
    let failed = upload
        .client
        .list_job_objects(&job.id, Some(pb::ObjectStatus::Failed))
        .await
        .unwrap();
    assert_eq!(
        failed.len(),
        1,
        "only the multipart object fails: {failed:#?}"
    );
    let object = &failed[0];
    assert_eq!(object.attempts, 1, "a refusal is not retried");
    assert_eq!(object.operation, "write");
    assert!(
        object
            .error
            .starts_with("write: permission denied (AccessDenied): writing s3://"),
        "{}",
        object.error
    );
    assert_switched_not(&upload.client, "scans", "fast").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_side_copies_whose_answers_have_another_root_are_confirmed() {
    let cp = ControlPlane::start().await;
    let client = cp.client().await;
    let s3 = S3Server::start().await;
    let source = mixed(42, 1 << 20);
    s3_site(&client, &s3, "hot", "hot-bucket", pb::Tier::Hot).await;
    s3_site(&client, &s3, "cold", "cold-bucket", pb::Tier::Cold).await;
    fill_bucket(&s3, "hot-bucket", "data", &source).await;
    dataset(&client, "data", "hot", "data").await;
    s3.faults()
        .answer(ServerSideOp::CopyObject, Answer::ForeignRoot);
    let _agent = Agent::start(&cp, "hot", &[]).await;
    let job = plan(&client, "data", "cold", pb::VerifyMode::Quick, "copies").await;
    let done = wait_for_end(&client, &job.id, TIMEOUT).await;
    assert_eq!(done.state, pb::JobState::Completed as i32, "{done:#?}");
    assert_eq!(
        s3.faults().foreign_roots(),
        source.len(),
        "every copy answered oddly"
    );
    assert_eq!(
        bucket_bytes(&s3.client(), "cold-bucket", "ferry/data/").await,
        source
    );
    assert_switched(&client, "data", "cold").await;
}

/// The dataset still lives on `site`.
async fn assert_switched_not(client: &Client, dataset: &str, site: &str) {
    let details = client.get_dataset(dataset).await.unwrap();
    let site = client.get_site(site).await.unwrap();
    assert_eq!(
        details.dataset.site, site.id,
        "a failed job switches nothing"
    );
}
