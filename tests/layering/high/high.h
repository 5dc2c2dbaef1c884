// Fixture of the layering test: a higher module including a lower one (allowed).
#pragma once
#include "low/low.h"
