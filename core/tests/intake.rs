//! The decisions of an `Intake` (the input and its journal on their way into a `JobSet`),
//! on the simulated server and clock of `sim`.

mod sim;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use fullstory_batch::http::Response;
use fullstory_batch::journal::{Fingerprint, Header, JournalError, JournalRecord};
use fullstory_batch::{
    Config, Event, EventRequest, Intake, JobSet, JournalSink, Ledger, Outcome, Policy, RequestId,
    Resource, StopReason, Transmit, TransportError, ValidationError,
};
use sim::{Machine, Server, Sim, config, events, t0};

type Items = Box<dyn Iterator<Item = Result<EventRequest, ValidationError>>>;

/// A sink whose records the test still sees after the intake is gone, and that fails every
/// append once `fail` is set.
#[derive(Debug, Clone, Default)]
struct Sink {
    records: Arc<Mutex<Vec<JournalRecord>>>,
    fail: Arc<AtomicBool>,
}

impl Sink {
    fn records(&self) -> Vec<JournalRecord> {
        self.records.lock().unwrap().clone()
    }

    fn fail(&self) {
        self.fail.store(true, Ordering::SeqCst);
    }

    /// The idempotency key journaled for each batch, by index.
    fn batch_keys(&self) -> Vec<(u64, String)> {
        self.records()
            .into_iter()
            .filter_map(|r| match r {
                JournalRecord::Batch { i, key, .. } => Some((i, key)),
                _ => None,
            })
            .collect()
    }
}

impl JournalSink for Sink {
    fn append(&mut self, record: &JournalRecord) -> std::io::Result<()> {
        if self.fail.load(Ordering::SeqCst) {
            return Err(std::io::Error::other("disk full"));
        }
        self.records.lock().unwrap().push(record.clone());
        Ok(())
    }
}

/// The driver's part of an import, as the adapters do it: flush at each step, read items
/// while the intake wants them, take events through it. It also checks the journal's rule
/// on every request: no create goes out before its batch's record is in the sink.
struct Fed {
    set: JobSet,
    intake: Intake,
    items: Items,
    sink: Option<Sink>,
}

impl Fed {
    fn new(set: JobSet, intake: Intake, items: Vec<EventRequest>) -> Self {
        Self {
            set,
            intake,
            items: Box::new(items.into_iter().map(Ok)),
            sink: None,
        }
    }

    fn journaled(mut self, ledger: Ledger, sink: &Sink) -> Self {
        self.intake = self.intake.with_journal(ledger, Box::new(sink.clone()));
        self.sink = Some(sink.clone());
        self
    }

    fn feed(&mut self, now: SystemTime) {
        while self.intake.wants_item(&self.set) {
            let item = self.items.next();
            self.intake.offer(&mut self.set, item, now);
        }
    }
}

impl Machine for Fed {
    type Item = EventRequest;
    fn poll_event(&mut self) -> Option<(u64, Event<EventRequest>)> {
        self.intake
            .poll_event(&mut self.set)
            .map(|(k, e)| (k.index(), e))
    }
    fn poll_transmit(&mut self, now: SystemTime) -> Option<Transmit> {
        self.intake.flush();
        self.feed(now);
        let transmit = self.set.poll_transmit(now)?;
        if let (Some(sink), true) = (&self.sink, transmit.request.method() == "POST") {
            let key = transmit.request.headers()["idempotency-key"]
                .to_str()
                .unwrap();
            assert!(
                sink.batch_keys().iter().any(|(_, k)| k == key),
                "a create went out before its record: {key}"
            );
        }
        Some(transmit)
    }
    fn poll_timeout(&mut self) -> Option<SystemTime> {
        self.set.poll_timeout()
    }
    fn handle_response(&mut self, id: RequestId, response: &Response<Vec<u8>>, now: SystemTime) {
        self.set.handle_response(id, response, now);
    }
    fn handle_send_failed(&mut self, id: RequestId, error: TransportError, now: SystemTime) {
        self.set.handle_send_failed(id, error, now);
    }
    fn is_over(&self) -> bool {
        self.set.is_empty() && self.intake.input_done()
    }
    fn round_trip(&mut self, _: &Arc<Config>) {}
}

fn set() -> JobSet {
    JobSet::new(config(), Policy::default(), t0(), 1).with_max_in_progress(1)
}

fn header() -> Header {
    Header::new(Resource::Events, 2, Fingerprint::default())
}

/// A fresh journal's ledger, its header already in `sink` (as a file journal writes it).
fn fresh(sink: &Sink) -> Ledger {
    let ledger = Ledger::new(header());
    sink.clone().append(&ledger.header()).unwrap();
    ledger
}

fn created(id: &str) -> Response<String> {
    Response::new(format!(
        r#"{{"job":{{"id":"{id}","status":"PROCESSING"}}}}"#
    ))
}

fn completed(id: &str, imports: u64) -> Response<String> {
    Response::new(format!(
        r#"{{"imports":{imports},"job":{{"id":"{id}","status":"COMPLETED"}}}}"#
    ))
}

fn item(name: &str) -> EventRequest {
    EventRequest {
        name: name.into(),
        ..EventRequest::default()
    }
}

/// A set and a fresh journaled intake over `sink`, a first batch of two in the set.
fn one_batch_in(sink: &Sink) -> (JobSet, Intake) {
    let mut set = set();
    let mut intake: Intake = Intake::new(2).with_journal(fresh(sink), Box::new(sink.clone()));
    for name in ["a", "b"] {
        intake.offer(&mut set, Some(Ok(item(name))), t0());
    }
    (set, intake)
}

#[test]
fn without_input_nothing_is_wanted() {
    let intake: Intake = Intake::without_input();
    assert!(intake.input_done());
    assert!(!intake.wants_item(&set()));
    assert!(intake.ledger().is_none() && intake.journal_error().is_none());
}

#[test]
fn batches_go_to_the_set_only_as_it_makes_room() {
    let mut fed = Fed::new(set(), Intake::new(2), events(7, 0));
    fed.feed(t0());
    // One job running and one waiting its turn: four items read, three left.
    assert_eq!(fed.set.len(), 2);
    assert!(!fed.set.wants_batch() && !fed.intake.wants_item(&fed.set));
    assert_eq!(fed.items.size_hint().0, 3);
    assert!(!fed.intake.input_done());

    let mut sim = Sim::new(fed, Server::default(), t0());
    sim.run();
    assert_eq!(sim.creates().len(), 4);
    let dones = sim.dones();
    assert_eq!(dones.len(), 4);
    assert!(dones.iter().all(|(_, _, o)| o.is_completed()));
    assert!(sim.machine.intake.input_done());
}

#[test]
fn a_fresh_journal_records_each_batch_before_its_create_and_its_end_after() {
    let sink = Sink::default();
    let fed = Fed::new(set(), Intake::new(500), events(5, 0)).journaled(fresh(&sink), &sink);
    let mut sim = Sim::new(fed, Server::default(), t0());
    sim.run();
    assert_eq!(sim.creates().len(), 3);
    drop(sim.machine); // the last event's record is written on drop

    // Cut at the ledger's batch size (2), not the intake's (500).
    let records = sink.records();
    let place = |want: &dyn Fn(&JournalRecord) -> bool| records.iter().position(want).unwrap();
    for i in 0..3 {
        let batch = place(&|r| matches!(r, JournalRecord::Batch { i: n, .. } if *n == i));
        let made = place(&|r| matches!(r, JournalRecord::Created { i: n, .. } if *n == i));
        let done = place(&|r| matches!(r, JournalRecord::Finished { i: n, .. } if *n == i));
        assert!(batch < made && made < done, "{records:?}");
    }
    assert_eq!(records.len(), 1 + 3 * 3);
}

#[test]
fn a_resume_skips_waits_creates_again_under_the_old_key_and_plans_the_rest() {
    // A first run, to the end, on the server the resume will use.
    let first = Sink::default();
    let fed = Fed::new(set(), Intake::new(2), events(7, 0)).journaled(fresh(&first), &first);
    let mut sim = Sim::new(fed, Server::default(), t0());
    sim.run();
    drop(sim.machine);
    let server = std::mem::take(&mut sim.server);
    let keys = first.batch_keys();
    assert_eq!(keys.len(), 4);

    // What a crash left: batch 0 finished, batch 1 created, batch 2 planned, batch 3 unknown.
    let kept: Vec<JournalRecord> = first
        .records()
        .into_iter()
        .filter(|r| match r {
            JournalRecord::Header(_) => true,
            JournalRecord::Batch { i, .. } => *i <= 2,
            JournalRecord::Created { i, .. } => *i <= 1,
            JournalRecord::Finished { i, .. } => *i == 0,
            _ => false,
        })
        .collect();
    let ledger = Ledger::replay(kept.clone(), &header()).unwrap();
    // The same journal, appended to.
    let again = Sink::default();
    again.records.lock().unwrap().extend(kept.iter().cloned());
    let fed = Fed::new(set(), Intake::new(2), events(7, 0)).journaled(ledger, &again);
    let mut sim = Sim::new(fed, server, t0());
    sim.run();

    // Batch 0 is skipped: three jobs, the first of them waited on by id (no create).
    let creates: Vec<&str> = sim
        .creates()
        .iter()
        .map(|r| r.idempotency_key.as_deref().unwrap())
        .collect();
    assert_eq!(creates, [keys[2].1.as_str(), keys[3].1.as_str()]);
    assert!(sim.requests[0].is_status() && sim.requests[0].key == 0);
    assert_eq!(sim.dones().len(), 3);
    let ledger = sim.machine.intake.ledger().unwrap();
    assert_eq!(ledger.batches().count(), 4);
    assert!(ledger.batches().all(|b| b.finished.is_some()));
    assert_eq!(
        ledger.totals(),
        (7, 0),
        "batch 0's counts come from the journal"
    );
    // Only batch 3 needed a new record before its create.
    assert_eq!(again.batch_keys(), keys);
    let added = &again.records()[kept.len()..];
    let new_batches: Vec<_> = added
        .iter()
        .filter(|r| matches!(r, JournalRecord::Batch { .. }))
        .collect();
    assert!(matches!(
        new_batches[..],
        [JournalRecord::Batch { i: 3, .. }]
    ));
    assert!(sim.machine.intake.journal_error().is_none());
}

#[test]
fn a_sink_that_fails_stops_the_input_and_the_batch_is_never_sent() {
    let sink = Sink::default();
    let (mut set, mut intake) = one_batch_in(&sink);
    assert_eq!(set.len(), 1, "the first batch went in with its record");

    sink.fail();
    intake.offer(&mut set, Some(Ok(item("c"))), t0());
    intake.offer(&mut set, Some(Ok(item("d"))), t0());
    assert!(matches!(
        intake.journal_error(),
        Some(JournalError::Write(_))
    ));
    assert!(intake.input_done() && !intake.wants_item(&set));
    assert_eq!(set.len(), 1, "the second batch was not added");
    // Only the first batch's create goes out.
    let create = set.poll_transmit(t0()).unwrap();
    assert_eq!(create.request.method(), "POST");
    assert!(set.poll_transmit(t0()).is_none());
    // Later items are ignored.
    intake.offer(&mut set, Some(Ok(item("e"))), t0());
    intake.offer(&mut set, None, t0());
    assert_eq!(set.len(), 1);
    assert_eq!(sink.batch_keys().len(), 1);
}

#[test]
fn a_failing_first_record_leaves_the_set_empty() {
    let sink = Sink::default();
    let ledger = fresh(&sink);
    sink.fail();
    let fed = Fed::new(set(), Intake::new(2), events(3, 0)).journaled(ledger, &sink);
    let mut sim = Sim::new(fed, Server::default(), t0());
    sim.run();
    assert!(sim.requests.is_empty() && sim.events.is_empty());
    assert!(matches!(
        sim.machine.intake.journal_error(),
        Some(JournalError::Write(_))
    ));
}

#[test]
fn pending_records_are_written_on_flush_and_on_drop() {
    let sink = Sink::default();
    let (mut set, mut intake) = one_batch_in(&sink);
    intake.offer(&mut set, None, t0());
    assert!(intake.input_done());
    assert_eq!(sink.records().len(), 2, "the header and the batch");

    let create = set.poll_transmit(t0()).unwrap();
    set.handle_response(create.id, &created("j1"), t0());
    let mut seen = Vec::new();
    while let Some((_, event)) = intake.poll_event(&mut set) {
        seen.push(event);
    }
    assert!(seen.iter().any(|e| matches!(e, Event::Created(_))));
    // Noted, not yet written: the caller handles the event first.
    assert_eq!(sink.records().len(), 2);
    intake.flush();
    assert!(matches!(
        sink.records().last(),
        Some(JournalRecord::Created { i: 0, job }) if job == "j1"
    ));

    let (mut now, mut last) = (t0(), None);
    while !set.is_empty() {
        while let Some(event) = intake.poll_event(&mut set) {
            last = Some(event);
        }
        now = set.poll_timeout().unwrap_or(now).max(now);
        while let Some(status) = set.poll_transmit(now) {
            set.handle_response(status.id, &completed("j1", 1), now);
        }
    }
    assert!(matches!(last, Some((_, Event::Done(Outcome::Finished(_))))));
    assert_eq!(sink.records().len(), 3);
    drop(intake);
    assert!(matches!(
        sink.records().last(),
        Some(JournalRecord::Finished {
            i: 0,
            imported: 1,
            ..
        })
    ));
}

#[test]
fn a_record_that_fails_at_flush_stops_the_input() {
    let sink = Sink::default();
    let (mut set, mut intake) = one_batch_in(&sink);
    let create = set.poll_transmit(t0()).unwrap();
    set.handle_response(create.id, &created("j1"), t0());
    while intake.poll_event(&mut set).is_some() {}

    sink.fail();
    intake.flush();
    assert!(matches!(
        intake.journal_error(),
        Some(JournalError::Write(_))
    ));
    assert!(intake.input_done());
    // The jobs already in the set run on.
    assert_eq!(set.len(), 1);
}

#[test]
fn an_invalid_item_refuses_the_input() {
    let mut set = set();
    let mut intake: Intake = Intake::new(2);
    intake.offer(&mut set, Some(Ok(item("a"))), t0());
    intake.offer(&mut set, Some(Ok(item(" "))), t0());
    assert!(intake.input_done());
    assert!(
        set.poll_transmit(t0()).is_none(),
        "the batch in progress is not sent"
    );
    let (_, event) = intake.poll_event(&mut set).unwrap();
    let Event::Done(Outcome::Stopped(stopped)) = event else {
        panic!("{event:?}")
    };
    assert!(matches!(
        stopped.reason,
        StopReason::InvalidInput(ValidationError::Item { index: 1, .. })
    ));
    intake.offer(&mut set, Some(Ok(item("c"))), t0());
    intake.offer(&mut set, None, t0());
    assert!(set.is_empty() && intake.poll_event(&mut set).is_none());

    // An item the caller could not read refuses it the same way.
    let mut intake: Intake = Intake::new(2);
    intake.offer(&mut set, Some(Err(ValidationError::Empty)), t0());
    assert!(intake.input_done());
    let (_, event) = intake.poll_event(&mut set).unwrap();
    assert!(matches!(
        event,
        Event::Done(Outcome::Stopped(s)) if matches!(s.reason, StopReason::InvalidInput(ValidationError::Empty))
    ));
}

#[test]
fn a_changed_input_on_resume_stops_it_before_anything_is_sent() {
    let first = Sink::default();
    let fed = Fed::new(set(), Intake::new(2), events(4, 0)).journaled(fresh(&first), &first);
    let mut sim = Sim::new(fed, Server::default(), t0());
    sim.run_until(|s| !s.creates().is_empty());
    drop(sim);

    let ledger = Ledger::replay(first.records(), &header()).unwrap();
    let again = Sink::default();
    let mut set = set();
    let mut intake: Intake = Intake::new(2).with_journal(ledger, Box::new(again.clone()));
    intake.offer(&mut set, Some(Ok(item("other"))), t0());
    intake.offer(&mut set, None, t0());
    assert!(matches!(
        intake.journal_error(),
        Some(JournalError::Changed(_))
    ));
    assert!(intake.input_done() && set.is_empty());
    assert!(again.records().is_empty());
}
