//! Forecasting daily series: the methods, and the rolling-origin backtest that chooses among
//! them and calibrates their prediction intervals. Pure functions on slices.

pub mod backtest;
pub mod methods;

pub use backtest::{
    forecast_series, forecast_with, mase_scale, Accuracy, ForecastConfig, Point, SeriesForecast,
    TooShort,
};
pub use methods::{Forecast, Method};
