"""Uploads in parts: a file larger than UPLOAD_MULTIPART_THRESHOLD_BYTES goes to R2 as a multipart
upload the client sends in parallel parts and can resume after a dropped connection or a reload.

- `parts.py`: the rules (R2's): how large each part is, how many there are, whether the parts R2
  holds add up to the declared file (pure);
- `service.py`: begin one for a new job, presign parts in batches, list what R2 holds, complete,
  abort, and the sweeper's expiry of an unfinished one;
- `routes.py` + `schemas.py`: the HTTP routes under /jobs/{jobId}/upload.

The job's status stays `uploading` throughout; `POST /jobs/{id}/start` charges and queues it as
before, after a HEAD of the object. Small files keep the one presigned PUT of chalicelib.processing.jobs.
"""
