pub use piecework_bencode as bencode;
