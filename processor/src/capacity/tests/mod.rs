//! Tests on generated series whose truth is known, run as the job runs them, and odd input.

mod forecasts;
mod generate;
mod leaks;
mod state;
