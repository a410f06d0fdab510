"""An example dlhwc target: a dense weight-stationary MAC array (README.md beside the
package is its hardware guide; target.py its descriptor)."""
