//! A whole training run, one job per file: `config` (MODEL.md's defaults, the one override
//! path, validation), `schedule` (training order and minibatch stream), `folder` (the run
//! folder's lock and files), `training` (the one loop, 1..N models), `finish` (evaluation,
//! samples, summary), `evaluate` (trained models on any split).

pub mod config;
pub mod evaluate;
pub mod finish;
pub mod folder;
pub mod schedule;
pub mod training;

pub use config::{Overrides, RunConfig};
pub use evaluate::{evaluate, load_model, model_data, parse_model, points_dataset, split_log_likelihood, EvalRow};
pub use finish::Summary;
pub use schedule::{batch_stream, Schedule};
pub use training::{group_key, prepare_run, train, train_members, train_on, Member, Options, Start, StepHook};
