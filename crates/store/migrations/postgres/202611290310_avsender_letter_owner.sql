-- Sender service (avsender): who a letter belongs to.
-- api_key_name: the name of the case system's API key that submitted the letter; only that key
-- sees the letter and may resubmit its id. NULL for letters stored before this column existed
-- (their submitter is unknown; every key sees them, as before).
-- avsender_orgnr: the letter's avsender (behandlingsansvarlig, Maskinporten consumer) when the
-- sender service sends on another organization's behalf; NULL = the service's own organization.
ALTER TABLE avsender_letters ADD COLUMN api_key_name TEXT;
ALTER TABLE avsender_letters ADD COLUMN avsender_orgnr TEXT;
CREATE INDEX avsender_letters_avsender ON avsender_letters (avsender_orgnr);
