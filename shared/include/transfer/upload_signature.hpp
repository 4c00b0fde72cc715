#pragma once
// Placeholder: filled in by the upload-signature work (HKDF-derived HMAC over the upload head).
