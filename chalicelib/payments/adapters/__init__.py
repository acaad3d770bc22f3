"""The payment ports on Stripe's library and on DynamoDB."""
