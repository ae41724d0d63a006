// Package file reads and writes the files of the file source and the file
// sink: JSON lines (one object per line, one key per column) and Apache
// Parquet, as Arrow record batches.
//
// List resolves a source's path (a file, a directory or a glob) to a sorted
// list of files and Assign gives subtask i of p the files i, i+p, …. A
// Reader reads one file in batches of a schema; ParquetWriter writes one
// file. Readers and writers are owned by one task and are not safe for
// concurrent use.
package file
