-- A neutralised copy (staging, a developer's database) must never send to the real counter.
UPDATE res_company
   SET metrika_token = NULL,
       metrika_enabled = FALSE;
