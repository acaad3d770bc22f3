"""Video-processing service: upload, transcode with FFmpeg, retry failed jobs."""
