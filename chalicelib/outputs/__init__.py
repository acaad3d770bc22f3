"""What a job produces and how a person sees it: the presets, the HLS stream's index and its
playlists, the poster and thumbnail sprite, and playback behind signed, short-lived URLs.

- `presets.py`: the catalog (what each preset encodes), pure;
- `hls.py`: an HLS stream as data (renditions, segments, sizes) and its playlists, pure;
- `thumbnails.py`: where the thumbnails fall and their WebVTT index, pure;
- `package.py`: the HLS download (a zip whose segments the playlists address by byte range);
- `playback.py`: the playback service (URLs, signed links, the playlists served by the API);
- `routes.py`, `schemas.py`: HTTP.
"""
