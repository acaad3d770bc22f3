// What the dashboard takes from Uppy (package.json pins it): the core and its S3 multipart
// uploader. `npm run build` (run by `make`) bundles this into uppy.js beside it (git-ignored).
export { default as Uppy } from '@uppy/core';
export { default as AwsS3 } from '@uppy/aws-s3';
