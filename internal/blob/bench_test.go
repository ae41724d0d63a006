package blob_test

import (
	"bytes"
	"fmt"
	"io"
	"path/filepath"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/sabotdev/sabot/internal/blob"
	"github.com/sabotdev/sabot/internal/testkit"
)

// benchSizes: a checkpoint metadata file, a typical SST, and a large SST
// (a multipart upload with the default 16 MiB parts).
func benchSizes() []int { return []int{256 << 10, 4 << 20, 64 << 20} }

func sizeName(n int) string {
	if n >= 1<<20 {
		return fmt.Sprintf("%dMiB", n>>20)
	}
	return fmt.Sprintf("%dKiB", n>>10)
}

// benchTarget is one way of writing and reading objects.
type benchTarget struct {
	put func(b *testing.B, key string, p []byte) error
	get func(b *testing.B, key string) (int64, error)
	del func(b *testing.B, key string) error
}

// benchTargets, each opened fresh per sub-benchmark, with default Options.
// The raw targets write a gofakes3 server through the bare SDK client and
// read it with one GetObject: the same-run baselines for the S3 store's
// overhead (SHA-256, trailer, conditional writes, parallel parts).
// "s3-raw-put" is one unconditional PutObject whatever the size;
// "s3-raw-mpu" uploads above 16 MiB in sequential 16 MiB parts, as the
// store's operations do.
func benchTargets() []struct {
	name string
	open func(b *testing.B) benchTarget
} {
	return []struct {
		name string
		open func(b *testing.B) benchTarget
	}{
		{"file", func(b *testing.B) benchTarget {
			st, err := blob.OpenFile(filepath.Join(b.TempDir(), "store"))
			if err != nil {
				b.Fatal(err)
			}
			return storeTarget(st)
		}},
		{"s3", func(b *testing.B) benchTarget {
			srv := testkit.StartS3(b)
			return storeTarget(openS3(b, srv, srv.Endpoint, blob.Options{}))
		}},
		{"s3-raw-put", func(b *testing.B) benchTarget {
			return rawTarget(b, func(b *testing.B, c *s3.Client, bucket, key *string, p []byte) error {
				_, err := c.PutObject(b.Context(), &s3.PutObjectInput{Bucket: bucket, Key: key, Body: bytes.NewReader(p)})
				return err
			})
		}},
		{"s3-raw-mpu", func(b *testing.B) benchTarget {
			return rawTarget(b, rawMultipart)
		}},
	}
}

// rawTarget writes through the bare SDK client of a fresh gofakes3 server,
// with put, and reads with one GetObject.
func rawTarget(b *testing.B, put func(b *testing.B, c *s3.Client, bucket, key *string, p []byte) error) benchTarget {
	srv := testkit.StartS3(b)
	c, bucket := srv.Client, aws.String(srv.Bucket)
	return benchTarget{
		put: func(b *testing.B, key string, p []byte) error {
			return put(b, c, bucket, aws.String(key), p)
		},
		get: func(b *testing.B, key string) (int64, error) {
			out, err := c.GetObject(b.Context(), &s3.GetObjectInput{Bucket: bucket, Key: aws.String(key)})
			if err != nil {
				return 0, err
			}
			n, err := io.Copy(io.Discard, out.Body)
			if cerr := out.Body.Close(); err == nil {
				err = cerr
			}
			return n, err
		},
		del: func(b *testing.B, key string) error {
			_, err := c.DeleteObject(b.Context(), &s3.DeleteObjectInput{Bucket: bucket, Key: aws.String(key)})
			return err
		},
	}
}

// rawMultipart uploads p as the S3 store does by default (16 MiB parts),
// but sequentially, with no hashing, trailer or conditions: the baseline
// for the store's multipart path. Objects up to one part use PutObject.
func rawMultipart(b *testing.B, c *s3.Client, bucket, key *string, p []byte) error {
	ctx := b.Context()
	if len(p) <= blob.DefaultPartSize {
		_, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: bucket, Key: key, Body: bytes.NewReader(p)})
		return err
	}
	up, err := c.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: bucket, Key: key})
	if err != nil {
		return err
	}
	var parts []types.CompletedPart
	for i := 0; len(p) > 0; i++ {
		n := min(len(p), blob.DefaultPartSize)
		out, err := c.UploadPart(ctx, &s3.UploadPartInput{
			Bucket: bucket, Key: key, UploadId: up.UploadId, PartNumber: aws.Int32(int32(i + 1)), Body: bytes.NewReader(p[:n]),
		})
		if err != nil {
			return err
		}
		parts = append(parts, types.CompletedPart{ETag: out.ETag, PartNumber: aws.Int32(int32(i + 1))})
		p = p[n:]
	}
	_, err = c.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
		Bucket: bucket, Key: key, UploadId: up.UploadId, MultipartUpload: &types.CompletedMultipartUpload{Parts: parts},
	})
	return err
}

func storeTarget(st blob.Store) benchTarget {
	return benchTarget{
		put: func(b *testing.B, key string, p []byte) error {
			return st.Put(b.Context(), key, bytes.NewReader(p), int64(len(p)))
		},
		get: func(b *testing.B, key string) (int64, error) {
			rc, err := st.Get(b.Context(), key)
			if err != nil {
				return 0, err
			}
			n, err := io.Copy(io.Discard, rc)
			if cerr := rc.Close(); err == nil {
				err = cerr
			}
			return n, err
		},
		del: func(b *testing.B, key string) error { return st.Delete(b.Context(), key) },
	}
}

func BenchmarkPut(b *testing.B) {
	for _, size := range benchSizes() {
		p := data(1, size)
		for _, tg := range benchTargets() {
			b.Run(sizeName(size)+"/"+tg.name, func(b *testing.B) {
				t := tg.open(b)
				b.SetBytes(int64(size))
				b.ReportAllocs()
				for i := range b.N {
					key := fmt.Sprintf("bench/%d", i)
					if err := t.put(b, key, p); err != nil {
						b.Fatal(err)
					}
					// Keep gofakes3's memory flat; not part of the measure.
					b.StopTimer()
					if err := t.del(b, key); err != nil {
						b.Fatal(err)
					}
					b.StartTimer()
				}
			})
		}
	}
}

func BenchmarkGet(b *testing.B) {
	for _, size := range benchSizes() {
		p := data(2, size)
		for _, tg := range benchTargets() {
			b.Run(sizeName(size)+"/"+tg.name, func(b *testing.B) {
				t := tg.open(b)
				if err := t.put(b, "bench", p); err != nil {
					b.Fatal(err)
				}
				b.SetBytes(int64(size))
				b.ReportAllocs()
				b.ResetTimer()
				for range b.N {
					if n, err := t.get(b, "bench"); err != nil || n < int64(size) {
						b.Fatalf("get: %d bytes, %v", n, err)
					}
				}
			})
		}
	}
}
