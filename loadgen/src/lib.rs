//! Load generation for Herald and its peers: the benchmark workloads, latency histograms and result tables.
