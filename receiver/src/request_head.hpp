#pragma once
// Placeholder: the strict request-head parser.
