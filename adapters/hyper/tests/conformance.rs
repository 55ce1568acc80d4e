//! The shared conformance suite (`fullstory-batch-conformance`) run against this adapter.

mod adapter;

fullstory_batch_conformance::suite!(adapter::Hyper);
