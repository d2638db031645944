/**
 * The per-message and per-stream bounds a core is held to (issue 12), read from config
 * once per use and announced in `welcome.limits` so an honest core never trips them.
 */
import type { Settings } from '../config/settings';
import type { BinaryLimits } from './messages';

/** The bounds of one binary message. */
export function binaryLimits(s: Settings): BinaryLimits {
  return { maxHeaderBytes: s.core.maxHeaderBytes, maxFiles: s.core.maxFilesPerMessage, maxFrames: s.core.maxFramesPerMessage };
}

/** The `limits` object of the welcome message (PROTOCOL §2). */
export function announcedLimits(s: Settings): Record<string, number> {
  const c = s.core;
  return {
    max_message_bytes: c.maxMessageBytes,
    max_buffer_bytes: c.maxBufferBytes,
    max_header_bytes: c.maxHeaderBytes,
    max_files_per_message: c.maxFilesPerMessage,
    max_frames_per_message: c.maxFramesPerMessage,
    max_file_names_per_stream: c.maxFileNamesPerStream,
  };
}

/** The caps on assignments held per engine key and per donor (see assignment-registry.ts). */
export function assignmentCaps(s: Settings): { perKey: number; perDonor: number; retryAfterS: number } {
  return { perKey: s.core.maxAssignmentsPerKey, perDonor: s.core.maxAssignmentsPerDonor, retryAfterS: s.core.retryAfterS };
}
