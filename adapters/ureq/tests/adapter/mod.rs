//! This adapter as the conformance suite (`fullstory-batch-conformance`) drives it.

use fullstory_batch_conformance::{Adapter, Options};
use fullstory_batch_ureq::{
    BatchItem, Budget, Client, ClientOptions, Config, CreateError, Error, Event, IdempotencyKey,
    ImportReport, JobKey, JobRef, JobStatusResponse, Outcome, Policy, ValidationError,
};

pub struct Ureq(Client);

impl Adapter for Ureq {
    const NAME: &'static str = "ureq";

    fn new(config: Config, options: Options) -> Self {
        let mut ureq_options = ClientOptions::new()
            .with_connect_timeout(options.connect_timeout)
            .with_request_timeout(options.request_timeout)
            .with_max_connections(options.max_connections);
        for der in options.roots_der {
            ureq_options = ureq_options.with_root_certificate_der(der);
        }
        for pem in &options.roots_pem {
            ureq_options = ureq_options
                .with_root_certificates_pem(pem.as_bytes())
                .expect("valid roots");
        }
        Self(Client::new(config, ureq_options).expect("a client"))
    }

    fn status(&self, job: &JobRef) -> Result<JobStatusResponse, Error> {
        self.0.status(job)
    }

    fn watch(&self, job: &JobRef, policy: Policy) -> Vec<Event> {
        self.0.watch(job.clone(), policy).map(|(_, e)| e).collect()
    }

    fn wait(&self, job: &JobRef, policy: Policy) -> Outcome {
        self.0.wait(job, policy)
    }

    fn wait_many(
        &self,
        jobs: Vec<JobRef>,
        policy: Policy,
        budget: Budget,
    ) -> Vec<(JobKey, Outcome)> {
        self.0.wait_many(jobs, policy, budget).outcomes()
    }

    fn import<T: BatchItem>(
        &self,
        items: &[T],
        key: Option<IdempotencyKey>,
        policy: Policy,
    ) -> Result<ImportReport<T>, ValidationError> {
        self.0.import(items, key, policy)
    }

    fn create<T: BatchItem>(
        &self,
        items: &[T],
        key: Option<IdempotencyKey>,
        policy: Policy,
    ) -> Result<JobRef, CreateError> {
        self.0.create(items, key, policy)
    }

    fn debug(&self) -> String {
        format!("{:?}", self.0)
    }

    fn trace_marks(job_id: &str) -> Vec<String> {
        vec![
            // `Client::status` has a span of its own.
            "fullstory_batch.status".to_owned(),
            format!("job={job_id}"),
            // A transport failure is a warning with its kind; each sleep is logged.
            "kind=\"reset\"".to_owned(),
            "wait_ms=".to_owned(),
        ]
    }
}
