//! Runnable microservice examples built on the Herald SDK: orders, billing, notifier.
