"""Storage: the row schema, atomic file writes and the run folder. Imports nothing else of the
package; every other layer reads and writes results through it."""
