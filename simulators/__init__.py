"""Device simulators that publish contract-conformant readings and labelled ground truth."""
