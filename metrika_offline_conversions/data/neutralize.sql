-- A neutralised copy (staging, a developer's database) must never send to the real counter.
UPDATE res_company
   SET metrika_token = NULL,
       metrika_enabled = FALSE;
-- Nor serve its conversions at the production's Conversion Centre link.
UPDATE res_company
   SET metrika_centre_secret = NULL,
       metrika_centre_link_enabled = FALSE;
