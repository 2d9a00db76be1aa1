-- An index on API-key use in api_requests (only the rows that presented a key): incident-data-breach asks where each key was used in the 30 days before its window, and since its revocation.

CREATE INDEX api_requests_api_key_id_ip_created_at_idx ON public.api_requests (api_key_id, ip, created_at)
  WHERE api_key_id IS NOT NULL;
