"""The ESE simulator (see backends/ese/README.md)."""
