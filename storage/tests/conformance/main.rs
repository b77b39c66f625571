//! The storage conformance suite: the same cases on every backend Ferry claims, each
//! against a real server or emulator the test starts on a free port (see
//! [`fixture`]), in the manner of OpenDAL's behaviour tests and quickwit's
//! `metastore_test_suite!`.

#![allow(clippy::unwrap_used)]

mod cases;
mod fixture;

/// Generates `<backend>::<case>` for each backend and each case listed for it.
macro_rules! conformance {
    ($($backend:ident: $kind:ident => [$($case:ident),* $(,)?]),* $(,)?) => {
        $(
            mod $backend {
                $(
                    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                    async fn $case() {
                        let fixture =
                            crate::fixture::Fixture::new(crate::fixture::Kind::$kind).await;
                        crate::cases::$case(fixture).await;
                    }
                )*
            }
        )*
    };
}

conformance!(
    fs: Fs => [
        listing_pages_through_thousands_of_keys,
        ranged_reads_give_exactly_the_range,
        empty_and_multi_chunk_objects_round_trip_with_their_attributes,
        delete_removes_and_is_idempotent,
        a_missing_object_is_not_found,
    ],
    memory: Memory => [
        listing_pages_through_thousands_of_keys,
        ranged_reads_give_exactly_the_range,
        empty_and_multi_chunk_objects_round_trip_with_their_attributes,
        delete_removes_and_is_idempotent,
        a_missing_object_is_not_found,
    ],
    s3: S3 => [
        listing_pages_through_thousands_of_keys,
        ranged_reads_give_exactly_the_range,
        empty_and_multi_chunk_objects_round_trip_with_their_attributes,
        delete_removes_and_is_idempotent,
        a_missing_object_is_not_found,
        a_wrong_key_is_permission_denied_and_never_retried,
        s3_answers_unlike_aws_end_as_they_should,
    ],
    azblob: Azblob => [
        listing_pages_through_thousands_of_keys,
        ranged_reads_give_exactly_the_range,
        empty_and_multi_chunk_objects_round_trip_with_their_attributes,
        delete_removes_and_is_idempotent,
        a_missing_object_is_not_found,
        a_wrong_key_is_permission_denied_and_never_retried,
    ],
    // fake-gcs-server takes any request, signed or not: a wrong key cannot be told.
    gcs: Gcs => [
        listing_pages_through_thousands_of_keys,
        ranged_reads_give_exactly_the_range,
        empty_and_multi_chunk_objects_round_trip_with_their_attributes,
        delete_removes_and_is_idempotent,
        a_missing_object_is_not_found,
    ],
);
