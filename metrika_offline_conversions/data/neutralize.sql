-- A neutralised copy (staging, a developer's database) must never send to the real counter.
UPDATE res_company
   SET metrika_token = NULL,
       metrika_enabled = FALSE,
       metrika_refresh_token = NULL,
       metrika_token_expires_at = NULL,
       metrika_oauth_client_secret = NULL;
-- A "Connect to Yandex" left half-done keeps its verifier or device code there.
DELETE FROM metrika_oauth_request;
-- Nor serve its conversions at the production's Conversion Centre link.
UPDATE res_company
   SET metrika_centre_secret = NULL,
       metrika_centre_link_enabled = FALSE;
